package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
)

// The tests below drive streamableClient against minimal hand-written MCP
// endpoints on loopback: they check the client's HTTP behaviour (headers,
// sessions, SSE, retries, error kinds), not MCP semantics.

const (
	testServer  = "github"
	testAPIKey  = "k-very-secret-credential"
	testVersion = upstreamtest.Version // what the fake upstream negotiates
)

// fakeClient is a client of f with the test credential.
func fakeClient(t *testing.T, f *upstreamtest.Fake) *streamableClient {
	c := newStreamableClient(testServer, f.URL(), http.Header{"X-Api-Key": {testAPIKey}}, bus.LatestProtocolVersion, nil)
	t.Cleanup(c.Close)
	return c
}

func kindOf(err error) bus.Kind { return bus.AsError(err).Kind }

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestStreamableJSONCallHeadersAndVerbatimResult(t *testing.T) {
	f := upstreamtest.NewFake(t)
	// Whitespace, key order and unknown fields must survive.
	const result = `{ "content": [ {"type":"text","text":"hi <there> & \u00e9"} ], "structuredContent":{"z":1,"a":2}, "isError": false, "future": {"x":[1, 2]} }`
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		upstreamtest.WriteJSONResult(w, m.ID, result)
	}
	c := fakeClient(t, f)
	params := json.RawMessage(`{"name":"search","arguments":{"q":"x"}}`)

	for i := 0; i < 2; i++ {
		msg, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/call", params, nil)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if string(msg.Result) != result {
			t.Fatalf("call %d result not verbatim:\n got  %s\n want %s", i, msg.Result, result)
		}
	}

	reqs := f.Requests()
	methods := make([]string, len(reqs))
	for i, r := range reqs {
		methods[i] = r.Msg.Method
	}
	if want := "initialize,notifications/initialized,tools/call,tools/call"; strings.Join(methods, ",") != want {
		t.Fatalf("upstream saw %v, want %s (one initialize shared by both calls)", methods, want)
	}
	for i, r := range reqs {
		if got := r.Header.Get("X-Api-Key"); got != testAPIKey {
			t.Errorf("request %d (%s): X-Api-Key = %q, want the configured credential", i, r.Msg.Method, got)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if a := r.Header.Get("Accept"); !strings.Contains(a, "application/json") || !strings.Contains(a, "text/event-stream") {
			t.Errorf("request %d: Accept %q must allow JSON and SSE", i, a)
		}
		if i == 0 {
			if r.Header.Get("Mcp-Session-Id") != "" {
				t.Errorf("initialize carried Mcp-Session-Id %q", r.Header.Get("Mcp-Session-Id"))
			}
			continue
		}
		if got := r.Header.Get("Mcp-Session-Id"); got != "sess-1" {
			t.Errorf("request %d (%s): Mcp-Session-Id = %q, want sess-1", i, r.Msg.Method, got)
		}
		if got := r.Header.Get("Mcp-Protocol-Version"); got != testVersion {
			t.Errorf("request %d (%s): Mcp-Protocol-Version = %q, want the negotiated %s", i, r.Msg.Method, got, testVersion)
		}
	}

	// initialize asked for the configured version and declared the client.
	var ip struct {
		ProtocolVersion string            `json:"protocolVersion"`
		ClientInfo      map[string]string `json:"clientInfo"`
	}
	if err := json.Unmarshal(reqs[0].Msg.Params, &ip); err != nil || ip.ProtocolVersion != bus.LatestProtocolVersion || ip.ClientInfo["name"] != "mcpbus" {
		t.Errorf("initialize params %s", reqs[0].Msg.Params)
	}
	// The call went out with our params verbatim and distinct ids.
	if string(reqs[2].Msg.Params) != string(params) {
		t.Errorf("tools/call params %s, want %s", reqs[2].Msg.Params, params)
	}
	if string(reqs[2].Msg.ID) == string(reqs[3].Msg.ID) {
		t.Errorf("two calls shared JSON-RPC id %s", reqs[2].Msg.ID)
	}
	if reqs[1].Msg.ID != nil {
		t.Errorf("notifications/initialized carried an id %s", reqs[1].Msg.ID)
	}

	// Info is the upstream's initialize result, without a new initialize.
	info, err := c.Info(ctxTimeout(t, time.Second))
	if err != nil || !strings.Contains(string(info), `"serverInfo":{"name":"fake","version":"1"}`) {
		t.Fatalf("Info = %s, %v", info, err)
	}

	// Close ends the session with a DELETE carrying it.
	c.Close()
	var del []upstreamtest.Seen
	for _, r := range f.Requests() {
		if r.HTTPMethod == http.MethodDelete {
			del = append(del, r)
		}
	}
	if len(del) != 1 || del[0].Header.Get("Mcp-Session-Id") != "sess-1" || del[0].Header.Get("X-Api-Key") != testAPIKey {
		t.Fatalf("Close sent %d DELETEs (%v)", len(del), del)
	}
	if f.Inits.Load() != 1 {
		t.Fatalf("%d initializes, want 1", f.Inits.Load())
	}
}

func TestStreamableSessionlessServer(t *testing.T) {
	f := upstreamtest.NewFake(t)
	f.NoSession = true
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		upstreamtest.WriteJSONResult(w, m.ID, `{}`)
	}
	c := fakeClient(t, f)
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/list", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Requests() {
		if _, ok := r.Header["Mcp-Session-Id"]; ok {
			t.Errorf("%s sent Mcp-Session-Id to a sessionless server", r.Msg.Method)
		}
	}
	call := f.ByMethod("tools/list")
	if len(call) != 1 {
		t.Fatalf("%d tools/list requests", len(call))
	}
	if want := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/list"}`, call[0].Msg.ID); string(call[0].Body) != want {
		t.Fatalf("request without params: %s, want %s", call[0].Body, want)
	}
}

func TestStreamableSSEProgressAndServerPing(t *testing.T) {
	f := upstreamtest.NewFake(t)
	const progress = `{"progressToken":"leg-1","progress":1,"total":3, "message":"step 1"}`
	const result = `{"content":[{"type":"text","text":"done"}], "_meta":{"k":"v"}}`
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fl := w.(http.Flusher)
		fmt.Fprintf(w, ": stream opened\n\n")
		fmt.Fprintf(w, "event: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":%s}\n\n", progress)
		fl.Flush()
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"srv-ping-1\",\"method\":\"ping\"}\n\n")
		fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n")
		fl.Flush()
		// The response, split over two data lines (joined with \n: still JSON).
		fmt.Fprintf(w, "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":%s,\"result\":%s}\r\n\r\n", m.ID, result)
	}
	c := fakeClient(t, f)

	var mu sync.Mutex
	var notes []string
	notify := func(method string, params json.RawMessage) {
		mu.Lock()
		notes = append(notes, method+" "+string(params))
		mu.Unlock()
	}
	msg, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/call", json.RawMessage(`{"name":"slow"}`), relayTo(notify))
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Result) != result {
		t.Fatalf("result %s, want %s", msg.Result, result)
	}
	mu.Lock()
	if len(notes) != 1 || notes[0] != "notifications/progress "+progress {
		t.Errorf("notify got %q, want the progress notification verbatim", notes)
	}
	mu.Unlock()

	// Both server-to-client requests are answered on a POST within the session.
	got := map[string]upstreamtest.Seen{}
	for len(got) < 2 {
		select {
		case r := <-f.Replies:
			got[string(r.Msg.ID)] = r
		case <-time.After(30 * time.Second):
			t.Fatalf("upstream got answers for %d of 2 server requests", len(got))
		}
	}
	ping := got[`"srv-ping-1"`]
	if string(ping.Msg.Result) != `{}` || ping.Msg.Error != nil {
		t.Errorf("ping answer %s, want result {}", ping.Body)
	}
	if ping.Header.Get("Mcp-Session-Id") != "sess-1" || ping.Header.Get("X-Api-Key") != testAPIKey || ping.Header.Get("Mcp-Protocol-Version") != testVersion {
		t.Errorf("ping answer headers %v", ping.Header)
	}
	other := got[`77`]
	var e struct{ Code int }
	if err := json.Unmarshal(other.Msg.Error, &e); err != nil || e.Code != -32601 || other.Msg.Result != nil {
		t.Errorf("sampling/createMessage answer %s, want error -32601", other.Body)
	}
}

// An upstream may name its server-to-client request anything; the refusal the
// client POSTs back must still be valid JSON.
func TestStreamableRefusalOfOddServerRequestIsValidJSON(t *testing.T) {
	f := upstreamtest.NewFake(t)
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"jsonrpc":"2.0","id":5,"method":"x/\"quoted\\"}`+"\n\n")
		fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\n\n", m.ID)
	}
	c := fakeClient(t, f)
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case r := <-f.Replies:
			if string(r.Msg.ID) != "5" {
				t.Fatalf("unexpected reply %s", r.Body)
			}
			return
		case <-deadline:
			t.Fatal("no answer to the server request")
		case <-time.After(10 * time.Millisecond):
			for _, r := range f.Requests() {
				if r.Bad {
					t.Fatalf("client POSTed invalid JSON upstream: %s", r.Body)
				}
			}
		}
	}
}

func TestStreamableSessionGoneReinitializesOnce(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"404", http.StatusNotFound, "Not Found"},
		{"400 complaining about the session", http.StatusBadRequest, "Bad Request: No valid session ID provided"},
		{"400 not initialized", http.StatusBadRequest, `{"jsonrpc":"2.0","error":{"code":-32000,"message":"Server not initialized"},"id":null}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := upstreamtest.NewFake(t)
			f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
				if sid == "sess-1" {
					http.Error(w, c.body, c.status) // the upstream restarted and forgot sess-1
					return
				}
				upstreamtest.WriteJSONResult(w, m.ID, `{"ok":true}`)
			}
			cl := fakeClient(t, f)
			msg, err := cl.Call(ctxTimeout(t, 5*time.Second), "tools/call", json.RawMessage(`{"name":"t"}`), nil)
			if err != nil {
				t.Fatalf("call after a forgotten session failed: %v", err)
			}
			if string(msg.Result) != `{"ok":true}` {
				t.Fatalf("result %s", msg.Result)
			}
			if n := f.Inits.Load(); n != 2 {
				t.Fatalf("%d initializes, want 2 (the first and one after %d)", n, c.status)
			}
			calls := f.ByMethod("tools/call")
			if len(calls) != 2 || calls[1].Header.Get("Mcp-Session-Id") != "sess-2" {
				t.Fatalf("tools/call sent %d times; retry must use the new session sess-2", len(calls))
			}
			if inits := f.ByMethod("initialize"); inits[1].Header.Get("Mcp-Session-Id") != "" {
				t.Fatalf("re-initialize carried the dead session id %q", inits[1].Header.Get("Mcp-Session-Id"))
			}
			// The new session sticks.
			if _, err := cl.Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil); err != nil || f.Inits.Load() != 2 {
				t.Fatalf("next call: %v, %d initializes", err, f.Inits.Load())
			}
		})
	}
}

func TestStreamableSessionGoneTwiceStops(t *testing.T) {
	f := upstreamtest.NewFake(t)
	var calls atomic.Int32
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		calls.Add(1)
		http.Error(w, "session not found", http.StatusNotFound)
	}
	c := fakeClient(t, f)
	_, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil)
	if err == nil {
		t.Fatal("want an error when the upstream forgets every session")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("tools/call sent %d times, want 2 (one retry, no loop)", n)
	}
	if n := f.Inits.Load(); n != 2 {
		t.Fatalf("%d initializes, want 2", n)
	}
}

func TestStreamableSessionGoneTwiceIsAnUpstreamError(t *testing.T) {
	f := upstreamtest.NewFake(t)
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		http.Error(w, "session not found", http.StatusNotFound)
	}
	_, err := fakeClient(t, f).Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil)
	var be *bus.Error
	if !errors.As(err, &be) {
		t.Fatalf("error %T %q is not a *bus.Error: bus.AsError makes it %s %q", err, err, kindOf(err).Code, bus.AsError(err).Message)
	}
	if be.Kind == bus.ErrInternal || !strings.Contains(be.Message, `"`+testServer+`"`) {
		t.Fatalf("error %s %q, want an upstream error naming %q", be.Kind.Code, be.Message, testServer)
	}
}

func TestStreamableHTTPStatusKinds(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		kind    bus.Kind
		inits   int32
		atInit  bool // fail the initialize instead of the call
		msgPart string
	}{
		{"401 on call", http.StatusUnauthorized, "bad key " + testAPIKey, bus.ErrUpstreamAuth, 1, false, "HTTP 401"},
		{"403 on call", http.StatusForbidden, "", bus.ErrUpstreamAuth, 1, false, "HTTP 403"},
		{"401 on initialize", http.StatusUnauthorized, "", bus.ErrUpstreamAuth, 1, true, "HTTP 401"},
		{"429", http.StatusTooManyRequests, "", bus.ErrUpstreamUnavailable, 1, false, "HTTP 429"},
		{"503", http.StatusServiceUnavailable, "", bus.ErrUpstreamUnavailable, 1, false, "HTTP 503"},
		{"500", http.StatusInternalServerError, "boom", bus.ErrUpstreamProtocol, 1, false, "HTTP 500"},
		{"400 not about the session", http.StatusBadRequest, "invalid params", bus.ErrUpstreamProtocol, 1, false, "HTTP 400"},
		{"404 on initialize", http.StatusNotFound, "", bus.ErrUpstreamProtocol, 1, true, "404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := upstreamtest.NewFake(t)
			if c.atInit {
				f.InitHook = func(w http.ResponseWriter, r *http.Request) bool {
					http.Error(w, c.body, c.status)
					return true
				}
			}
			f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
				http.Error(w, c.body, c.status)
			}
			_, err := fakeClient(t, f).Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			e := bus.AsError(err)
			if e.Kind != c.kind {
				t.Fatalf("kind %s (%q), want %s", e.Kind.Code, e.Message, c.kind.Code)
			}
			if !strings.Contains(e.Message, `"`+testServer+`"`) || !strings.Contains(e.Message, c.msgPart) {
				t.Errorf("message %q should name server %q and say %q", e.Message, testServer, c.msgPart)
			}
			if strings.Contains(e.Message, testAPIKey) {
				t.Errorf("message %q leaks the credential", e.Message)
			}
			if n := f.Inits.Load(); n != c.inits {
				t.Errorf("%d initializes, want %d (no retry for HTTP %d)", n, c.inits, c.status)
			}
		})
	}
}

func TestStreamableBadAnswers(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter, id json.RawMessage)
		kind   bus.Kind
	}{
		{"202 to a request", func(w http.ResponseWriter, id json.RawMessage) { w.WriteHeader(http.StatusAccepted) }, bus.ErrUpstreamProtocol},
		{"malformed JSON", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"jsonrpc":`)
		}, bus.ErrUpstreamProtocol},
		{"response to another id", func(w http.ResponseWriter, id json.RawMessage) {
			upstreamtest.WriteJSONResult(w, json.RawMessage(`999999`), `{}`)
		}, bus.ErrUpstreamProtocol},
		{"unexpected content type", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html></html>")
		}, bus.ErrUpstreamProtocol},
		{"SSE stream ends before the response", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n")
		}, bus.ErrUpstreamProtocol},
		{"SSE stream cut mid-event", func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",")
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}, bus.ErrUpstreamUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := upstreamtest.NewFake(t)
			f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) { c.answer(w, m.ID) }
			_, err := fakeClient(t, f).Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil)
			if e := bus.AsError(err); err == nil || e.Kind != c.kind || !strings.Contains(e.Message, `"`+testServer+`"`) {
				t.Fatalf("err %v (%s), want %s naming the server", err, e.Kind.Code, c.kind.Code)
			}
		})
	}
}

func TestStreamableConnectionRefused(t *testing.T) {
	c := newStreamableClient(testServer, upstreamtest.ClosedURL(t), http.Header{"Authorization": {"Bearer " + testAPIKey}}, bus.LatestProtocolVersion, nil)
	defer c.Close()
	_, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/call", nil, nil)
	e := bus.AsError(err)
	if e.Kind != bus.ErrUpstreamUnavailable {
		t.Fatalf("kind %s (%q), want %s", e.Kind.Code, e.Message, bus.ErrUpstreamUnavailable.Code)
	}
	if !strings.Contains(e.Message, "connection refused") || !strings.Contains(e.Message, `"`+testServer+`"`) {
		t.Fatalf("message %q should say connection refused and name the server", e.Message)
	}
	if _, err := c.Info(ctxTimeout(t, 5*time.Second)); kindOf(err) != bus.ErrUpstreamUnavailable {
		t.Fatalf("Info: %v", err)
	}
}

// A call whose deadline passes ends with UPSTREAM_TIMEOUT while the upstream
// still holds the request: the upstream never answers before the test ends,
// so nothing but the deadline can end the call.
func TestStreamableDeadline(t *testing.T) {
	type hangFunc func(w http.ResponseWriter, r *http.Request)
	cases := []struct {
		name  string
		setup func(f *upstreamtest.Fake, hang hangFunc)
	}{
		{"call never answers", func(f *upstreamtest.Fake, hang hangFunc) {
			f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) { hang(w, r) }
		}},
		{"SSE stream stalls", func(f *upstreamtest.Fake, hang hangFunc) {
			f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n")
				w.(http.Flusher).Flush()
				hang(w, r)
			}
		}},
		{"initialize never answers", func(f *upstreamtest.Fake, hang hangFunc) {
			f.InitHook = func(w http.ResponseWriter, r *http.Request) bool { hang(w, r); return true }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := upstreamtest.NewFake(t)
			held := make(chan struct{})
			t.Cleanup(func() { close(held) }) // before the upstream's Close
			c.setup(f, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-held:
				}
			})
			cl, ctx := fakeClient(t, f), ctxTimeout(t, 200*time.Millisecond)
			errc := make(chan error, 1)
			go func() {
				_, err := cl.Call(ctx, "tools/call", nil, relayTo(func(string, json.RawMessage) {}))
				errc <- err
			}()
			var err error
			select {
			case err = <-errc:
			case <-time.After(30 * time.Second): // only a call that ignores its deadline gets here
				t.Fatal("the call did not end at its 200ms deadline")
			}
			e := bus.AsError(err)
			if e.Kind != bus.ErrUpstreamTimeout || !strings.Contains(e.Message, `"`+testServer+`"`) {
				t.Fatalf("err %s %q, want %s naming the server", e.Kind.Code, e.Message, bus.ErrUpstreamTimeout.Code)
			}
		})
	}
}

func TestStreamableWaiterGivesUpWhileAnotherInitializes(t *testing.T) {
	f := upstreamtest.NewFake(t)
	release := make(chan struct{})
	f.InitHook = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	}
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		upstreamtest.WriteJSONResult(w, m.ID, `{}`)
	}
	c := fakeClient(t, f)
	slow := make(chan error, 1)
	go func() {
		_, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/list", nil, nil)
		slow <- err
	}()
	bustest.Eventually(t, 30*time.Second, "the first caller holds the initialize", func() error {
		return bustest.AtLeast("initializes", f.Inits.Load(), 1)
	})
	_, err := c.Call(ctxTimeout(t, 100*time.Millisecond), "tools/list", nil, nil)
	if kindOf(err) != bus.ErrUpstreamTimeout {
		t.Fatalf("waiting caller: %v, want %s", err, bus.ErrUpstreamTimeout.Code)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("initializing caller: %v", err)
	}
	if n := f.Inits.Load(); n != 1 {
		t.Fatalf("%d initializes", n)
	}
}

func TestStreamableConcurrentFirstCallsShareOneInitialize(t *testing.T) {
	f := upstreamtest.NewFake(t)
	f.InitDelay = 50 * time.Millisecond
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		upstreamtest.WriteJSONResult(w, m.ID, fmt.Sprintf(`{"echo":%s}`, m.ID))
	}
	c := fakeClient(t, f)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := c.Call(ctxTimeout(t, 10*time.Second), "tools/call", nil, nil)
			if err == nil && !strings.HasPrefix(string(msg.Result), `{"echo":`) {
				err = fmt.Errorf("result %s", msg.Result)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := f.Inits.Load(); got != 1 {
		t.Fatalf("%d initializes for %d concurrent first calls, want 1", got, n)
	}
	calls := f.ByMethod("tools/call")
	if len(calls) != n {
		t.Fatalf("%d calls reached the upstream, want %d", len(calls), n)
	}
	ids := map[string]bool{}
	for _, r := range calls {
		if r.Header.Get("Mcp-Session-Id") != "sess-1" {
			t.Errorf("call with session %q", r.Header.Get("Mcp-Session-Id"))
		}
		ids[string(r.Msg.ID)] = true
	}
	if len(ids) != n {
		t.Errorf("%d distinct JSON-RPC ids for %d calls", len(ids), n)
	}
}

func TestStreamableErrorsDoNotLeakURLSecrets(t *testing.T) {
	const user, pass, token = "svc-user", "p4ssw0rd-secret", "t0ken-secret"
	secrets := []string{user, pass, token, "token="}

	failing := func(status int) string {
		f := upstreamtest.NewFake(t)
		f.InitHook = func(w http.ResponseWriter, r *http.Request) bool {
			http.Error(w, "upstream says: "+r.URL.String(), status)
			return true
		}
		return f.Srv.URL
	}
	cut := func() string {
		f := upstreamtest.NewFake(t)
		f.InitHook = func(w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "text/event-stream")
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return true
		}
		return f.Srv.URL
	}
	hang := func() string {
		f := upstreamtest.NewFake(t)
		f.InitHook = func(w http.ResponseWriter, r *http.Request) bool {
			<-r.Context().Done()
			return true
		}
		return f.Srv.URL
	}
	withSecrets := func(base string) string {
		return strings.Replace(base, "http://", "http://"+user+":"+pass+"@", 1) + "/mcp?token=" + token
	}
	cases := []struct {
		name    string
		url     string
		timeout time.Duration
	}{
		{"HTTP 500", withSecrets(failing(http.StatusInternalServerError)), 5 * time.Second},
		{"HTTP 502", withSecrets(failing(http.StatusBadGateway)), 5 * time.Second},
		{"HTTP 401", withSecrets(failing(http.StatusUnauthorized)), 5 * time.Second},
		{"closed port", withSecrets(strings.TrimSuffix(upstreamtest.ClosedURL(t), "/mcp")), 5 * time.Second},
		{"connection cut", withSecrets(cut()), 5 * time.Second},
		{"timeout", withSecrets(hang()), 200 * time.Millisecond},
		{"unresolvable host", "http://" + user + ":" + pass + "@no-such-host.invalid/mcp?token=" + token, 5 * time.Second},
		{"invalid URL", "http://" + user + ":" + pass + "@bad host/mcp?token=" + token, 5 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := newStreamableClient(testServer, c.url, nil, bus.LatestProtocolVersion, nil)
			defer cl.Close()
			_, err := cl.Call(ctxTimeout(t, c.timeout), "tools/call", nil, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			e := bus.AsError(err)
			t.Logf("%s: %s", e.Kind.Code, e.Message)
			for _, s := range []string{err.Error(), e.Message} {
				for _, secret := range secrets {
					if strings.Contains(s, secret) {
						t.Fatalf("error %q contains %q", s, secret)
					}
				}
			}
			if !strings.Contains(e.Message, `"`+testServer+`"`) {
				t.Errorf("message %q does not name the server", e.Message)
			}
		})
	}
}
