package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// mgrUpstream is a go-sdk Streamable HTTP server whose "who" tool answers its
// name; it counts initializes and session DELETEs.
type mgrUpstream struct {
	url     string
	mu      sync.Mutex
	inits   int
	deletes int
	// The "hold" tool tells held it runs and answers once release is closed.
	held    chan struct{}
	release func()
}

func newMgrUpstream(t *testing.T, name string) *mgrUpstream {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	u := &mgrUpstream{held: make(chan struct{}, 1)}
	released := make(chan struct{})
	u.release = sync.OnceFunc(func() { close(released) })
	mcp.AddTool(s, &mcp.Tool{Name: "who"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "sleep"}, func(ctx context.Context, _ *mcp.CallToolRequest, in struct {
		MS int `json:"ms"`
	}) (*mcp.CallToolResult, any, error) {
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slept"}}}, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "hold"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		select {
		case u.held <- struct{}{}:
		default:
		}
		select {
		case <-released:
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "held"}}}, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := streamingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		if r.Method == http.MethodDelete {
			u.deletes++
		}
		if bytes.Contains(body, []byte(`"method":"initialize"`)) {
			u.inits++
		}
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	u.url = srv.URL + "/mcp"
	t.Cleanup(u.release) // before the server's Close, which waits for the held call
	return u
}

// streamingServer serves h on loopback until the test ends. Closing it first
// ends the requests still running (the GET streams workers keep open), which
// httptest.Server.Close would otherwise wait for.
func streamingServer(t testing.TB, h http.Handler) *httptest.Server {
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewUnstartedServer(h)
	srv.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	srv.Start()
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	return srv
}

func (u *mgrUpstream) counts() (inits, deletes int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inits, u.deletes
}

// mgrEnv is a real embedded NATS server with the servers bucket.
type mgrEnv struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	logs *syncLog
}

type syncLog = bustest.Buffer

func newMgrEnv(t *testing.T) *mgrEnv {
	t.Helper()
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := bus.ServersBucket(context.Background(), js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	return &mgrEnv{nc: nc, js: js, kv: kv, logs: &syncLog{}}
}

func (e *mgrEnv) start(t *testing.T, only ...string) *Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	env := func(k string) (string, bool) {
		if k == "MGR_TEST_TOKEN" {
			return "sk-upstream-secret", true
		}
		return "", false
	}
	m, err := StartManager(ctx, e.nc, ManagerOptions{
		Worker: Options{Log: slog.New(slog.NewTextHandler(e.logs, nil)), Env: env, JetStream: e.js},
		Only:   only,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

func (e *mgrEnv) put(t *testing.T, s bus.ServerSpec) {
	t.Helper()
	data, _ := json.Marshal(s)
	if _, err := e.kv.Put(context.Background(), s.Name, data); err != nil {
		t.Fatal(err)
	}
}

// settled returns once the manager has applied every record written before:
// it writes the record of a marker server, waits until the marker answers
// (the manager applies records one at a time, in the order written), and
// deletes it again.
func (e *mgrEnv) settled(t *testing.T) {
	t.Helper()
	marker := newMgrUpstream(t, "marker")
	e.put(t, bus.ServerSpec{Name: "marker", URL: marker.url})
	bustest.Eventually(t, 30*time.Second, "the marker record is served", answers(e.nc, "marker", "marker"))
	e.del(t, "marker")
	bustest.Eventually(t, 30*time.Second, "the marker record is deleted", noResponders(e.nc, "marker"))
}

func (e *mgrEnv) del(t *testing.T, name string) {
	t.Helper()
	if err := e.kv.Delete(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// callWho sends tools/call "who" to the server's worker subject and returns
// the answering upstream's name.
func callWho(nc *nats.Conn, server string) (string, error) {
	return callTool(nc, server, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"who","arguments":{}}}`, 5*time.Second)
}

func callTool(nc *nats.Conn, server, body string, timeout time.Duration) (string, error) {
	msg, err := nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC(server), Data: []byte(body), Header: bustest.InternalCaller()}, timeout)
	if err != nil {
		return "", err
	}
	if e := bus.ReplyError(msg); e != nil {
		return "", e
	}
	var r struct {
		Result struct {
			Content []struct{ Text string }
		}
		Error *struct{ Message string }
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return "", err
	}
	if r.Error != nil {
		return "", errors.New(r.Error.Message)
	}
	if len(r.Result.Content) == 0 {
		return "", errors.New("empty result: " + string(msg.Data))
	}
	return r.Result.Content[0].Text, nil
}

// answers is a condition: a call to server's who tool answers want.
func answers(nc *nats.Conn, server, want string) func() error {
	return func() error {
		if got, err := callWho(nc, server); err != nil || got != want {
			return fmt.Errorf("%s answered %q, %v; want %q", server, got, err, want)
		}
		return nil
	}
}

// noResponders is a condition: no worker takes a call to server.
func noResponders(nc *nats.Conn, server string) func() error {
	return func() error {
		if got, err := callWho(nc, server); !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("%s answered %q, %v; want no responders", server, got, err)
		}
		return nil
	}
}

// put -> callable; update -> the new upstream answers and the old
// session is closed; an unchanged rewrite keeps the session; delete -> no
// worker answers.
func TestManagerFollowsRecords(t *testing.T) {
	e := newMgrEnv(t)
	m := e.start(t)
	one, two := newMgrUpstream(t, "one"), newMgrUpstream(t, "two")

	e.put(t, bus.ServerSpec{Name: "alpha", URL: one.url, Source: "api"})
	bustest.Eventually(t, 30*time.Second, "a new record is served", answers(e.nc, "alpha", "one"))
	if got := m.Hosted(); !reflect.DeepEqual(got, []string{"alpha"}) {
		t.Fatalf("Hosted() = %v", got)
	}

	e.put(t, bus.ServerSpec{Name: "alpha", URL: two.url, Source: "api"})
	bustest.Eventually(t, 30*time.Second, "an updated record is served by the new upstream", answers(e.nc, "alpha", "two"))
	bustest.Eventually(t, 30*time.Second, "the old upstream session is closed", func() error { _, d := one.counts(); return bustest.Want("DELETEs to one", d, 1) })
	for i := 0; i < 5; i++ {
		if got, err := callWho(e.nc, "alpha"); err != nil || got != "two" {
			t.Fatalf("after the update a call reached %q, %v", got, err)
		}
	}

	// Rewriting the same spec (as a config re-seed or an idempotent API PUT
	// would) must not restart the worker.
	initsBefore, _ := two.counts()
	e.put(t, bus.ServerSpec{Name: "alpha", URL: two.url, Source: "api"})
	e.settled(t)
	if got, _ := callWho(e.nc, "alpha"); got != "two" {
		t.Fatalf("after an unchanged rewrite: %q", got)
	}
	if inits, deletes := two.counts(); inits != initsBefore || deletes != 0 {
		t.Fatalf("an unchanged rewrite restarted the worker (inits %d -> %d, deletes %d)", initsBefore, inits, deletes)
	}

	e.del(t, "alpha")
	bustest.Eventually(t, 30*time.Second, "a deleted server has no worker", noResponders(e.nc, "alpha"))
	bustest.Eventually(t, 30*time.Second, "the deleted server's session is closed", func() error { _, d := two.counts(); return bustest.Want("DELETEs to two", d, 1) })
	if got := m.Hosted(); len(got) != 0 {
		t.Fatalf("Hosted() after delete = %v", got)
	}
}

// Records present at start are served when StartManager returns; Stop takes
// every worker off the bus and closes their sessions.
func TestManagerInitialRecordsAndStop(t *testing.T) {
	e := newMgrEnv(t)
	one := newMgrUpstream(t, "one")
	e.put(t, bus.ServerSpec{Name: "a", URL: one.url, Source: "config"})
	e.put(t, bus.ServerSpec{Name: "b", URL: one.url, Source: "config"})
	e.put(t, bus.ServerSpec{Name: "gone", URL: one.url, Source: "api"})
	e.del(t, "gone")
	m := e.start(t)
	for _, s := range []string{"a", "b"} {
		if got, err := callWho(e.nc, s); err != nil || got != "one" {
			t.Fatalf("%s right after start: %q %v", s, got, err)
		}
	}
	if got := m.Hosted(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Hosted() = %v", got)
	}
	m.Stop()
	for _, s := range []string{"a", "b"} {
		if err := noResponders(e.nc, s)(); err != nil {
			t.Fatalf("after Stop: %v", err)
		}
	}
	if _, d := one.counts(); d != 2 {
		t.Fatalf("%d sessions closed on Stop, want 2", d)
	}
	m.Stop() // idempotent
	// Records written after Stop start nothing.
	e.put(t, bus.ServerSpec{Name: "c", URL: one.url})
	// Real time: a stopped manager follows nothing, so there is no marker to
	// wait for; a worker started anyway would be on the bus by then.
	time.Sleep(100 * time.Millisecond)
	if err := noResponders(e.nc, "c")(); err != nil {
		t.Fatalf("a stopped manager started a worker: %v", err)
	}
}

// With a subset, only the named servers are hosted; the others are left to
// other worker hosts.
func TestManagerSubset(t *testing.T) {
	e := newMgrEnv(t)
	m := e.start(t, "mine")
	one := newMgrUpstream(t, "one")
	e.put(t, bus.ServerSpec{Name: "theirs", URL: one.url})
	e.put(t, bus.ServerSpec{Name: "mine", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "the hosted server is served", answers(e.nc, "mine", "one"))
	if err := noResponders(e.nc, "theirs")(); err != nil {
		t.Fatalf("a server outside the subset got a worker: %v", err)
	}
	if got := m.Hosted(); !reflect.DeepEqual(got, []string{"mine"}) {
		t.Fatalf("Hosted() = %v", got)
	}
	// A second host for the other server shares the bus with the first.
	m2 := e.start(t, "theirs")
	if got, err := callWho(e.nc, "theirs"); err != nil || got != "one" {
		t.Fatalf("second host: %q %v", got, err)
	}
	if got := m2.Hosted(); !reflect.DeepEqual(got, []string{"theirs"}) {
		t.Fatalf("second host Hosted() = %v", got)
	}
}

// A record that cannot be provisioned here is logged (without secrets) and
// tried again when it changes; the other servers keep working.
func TestManagerBadSpecDoesNotStopOthers(t *testing.T) {
	e := newMgrEnv(t)
	one, two := newMgrUpstream(t, "one"), newMgrUpstream(t, "two")
	e.put(t, bus.ServerSpec{Name: "bad", URL: one.url, AuthType: "bearer_token", AuthValue: "os.environ/MGR_MISSING_VAR"})
	m := e.start(t)
	e.put(t, bus.ServerSpec{Name: "good", URL: two.url})
	bustest.Eventually(t, 30*time.Second, "the good server is served", answers(e.nc, "good", "two"))
	if err := noResponders(e.nc, "bad")(); err != nil {
		t.Fatalf("the bad server answers: %v", err)
	}
	if err := m.Failed()["bad"]; err == nil || !strings.Contains(err.Error(), "MGR_MISSING_VAR") {
		t.Fatalf("Failed()[bad] = %v", err)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "server=bad") || !strings.Contains(logs, "MGR_MISSING_VAR") {
		t.Fatalf("the failure is not logged with the server and reason:\n%s", logs)
	}

	// A working good server is not disturbed by the bad one being rewritten.
	e.put(t, bus.ServerSpec{Name: "bad", URL: one.url, AuthType: "bearer_token", AuthValue: "os.environ/MGR_TEST_TOKEN"})
	bustest.Eventually(t, 30*time.Second, "the fixed record is served", answers(e.nc, "bad", "one"))
	if len(m.Failed()) != 0 {
		t.Fatalf("Failed() after the fix = %v", m.Failed())
	}
	if got, err := callWho(e.nc, "good"); err != nil || got != "two" {
		t.Fatalf("good after the fix: %q %v", got, err)
	}

	// An update that breaks a running server stops it (its record no longer
	// describes it) and is logged; an unreadable record is ignored.
	e.put(t, bus.ServerSpec{Name: "bad", URL: one.url, AuthType: "bearer_token", AuthValue: "os.environ/MGR_MISSING_VAR"})
	bustest.Eventually(t, 30*time.Second, "a server broken by an update stops answering", noResponders(e.nc, "bad"))
	if _, err := e.kv.Put(context.Background(), "good", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	e.settled(t)
	if got, err := callWho(e.nc, "good"); err != nil || got != "two" {
		t.Fatalf("good after an unreadable record: %q %v", got, err)
	}
	if strings.Contains(e.logs.String(), "sk-upstream-secret") {
		t.Fatal("a resolved credential reached the log")
	}
}

// A call in flight when its server is deleted or updated finishes on the old
// worker before the old session closes. The old upstream holds the call until
// the update is served, so it is in flight throughout.
func TestManagerDrainsInFlightCalls(t *testing.T) {
	e := newMgrEnv(t)
	e.start(t)
	one, two := newMgrUpstream(t, "one"), newMgrUpstream(t, "two")
	e.put(t, bus.ServerSpec{Name: "alpha", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "served", answers(e.nc, "alpha", "one"))
	done := make(chan error, 1)
	go func() {
		got, err := callTool(e.nc, "alpha", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"hold","arguments":{}}}`, 30*time.Second)
		if err == nil && got != "held" {
			err = errors.New("answer " + got)
		}
		done <- err
	}()
	<-one.held
	e.put(t, bus.ServerSpec{Name: "alpha", URL: two.url})
	bustest.Eventually(t, 30*time.Second, "the update is served", answers(e.nc, "alpha", "two"))
	if _, d := one.counts(); d != 0 {
		t.Fatalf("the old session was closed (%d DELETEs) with a call in flight", d)
	}
	one.release()
	if err := <-done; err != nil {
		t.Fatalf("the call in flight during the update: %v", err)
	}
	bustest.Eventually(t, 30*time.Second, "the old session is closed after the drain", func() error { _, d := one.counts(); return bustest.Want("DELETEs to one", d, 1) })
}

// ownGoroutines counts the goroutines a manager and its workers could leave
// behind: anything running toolworkers code (the test itself excepted) and
// HTTP client connections. Other goroutines (NATS server, upstream servers,
// earlier tests winding down) are not counted, so the check is not flaky.
func ownGoroutines() (int, string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "TestManagerNoGoroutineLeak") {
			continue
		}
		if strings.Contains(g, "mcpbus/toolworkers.") || strings.Contains(g, "net/http.(*persistConn)") {
			n++
			out = append(out, g)
		}
	}
	return n, strings.Join(out, "\n\n")
}

// Start, a few records, Stop: no goroutine outlives the manager.
func TestManagerNoGoroutineLeak(t *testing.T) {
	e := newMgrEnv(t)
	one, two := newMgrUpstream(t, "one"), newMgrUpstream(t, "two")
	before, _ := ownGoroutines()
	m := e.start(t)
	e.put(t, bus.ServerSpec{Name: "a", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "served", answers(e.nc, "a", "one"))
	e.put(t, bus.ServerSpec{Name: "a", URL: two.url})
	bustest.Eventually(t, 30*time.Second, "updated", answers(e.nc, "a", "two"))
	e.put(t, bus.ServerSpec{Name: "b", URL: one.url, AuthValue: "os.environ/MGR_MISSING_VAR", AuthType: "bearer_token"})
	e.put(t, bus.ServerSpec{Name: "c", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "served", answers(e.nc, "c", "one"))
	if n, _ := ownGoroutines(); n <= before {
		t.Fatalf("the check sees no goroutines of running workers (%d before, %d now)", before, n)
	}
	m.Stop()
	bustest.Eventually(t, 30*time.Second, "no goroutine of ours outlives Stop", func() error {
		if n, stacks := ownGoroutines(); n > before {
			return fmt.Errorf("%d goroutines of ours before, %d after Stop:\n%s", before, n, stacks)
		}
		return nil
	})
}
