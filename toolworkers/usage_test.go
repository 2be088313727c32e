package toolworkers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const usageTestKey = "sk-usage-test-plaintext-key"

// usageUpstream answers tools/call "search" (ok), "bad" (a JSON-RPC error)
// and tools/list.
func usageUpstream(t *testing.T) *upstreamtest.Fake {
	f := upstreamtest.NewFake(t)
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		switch {
		case m.Method == "tools/list":
			upstreamtest.WriteJSONResult(w, m.ID, `{"tools":[{"name":"search","inputSchema":{"type":"object"}}]}`)
		case string(m.Params) != "" && strings.Contains(string(m.Params), `"name":"bad"`):
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"error":{"code":-32602,"message":"unknown tool"}}`)
		default:
			upstreamtest.WriteJSONResult(w, m.ID, `{"content":[{"type":"text","text":"found"}]}`)
		}
	}
	return f
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// callWorker sends one request to a worker as the router would and returns
// the reply.
func callWorker(t *testing.T, nc *nats.Conn, server, reqID, body string) *nats.Msg {
	t.Helper()
	env := bus.Envelope{RequestID: reqID, IPClass: bus.Internal,
		Caller: bus.Identity{KeyID: bus.HashKey(usageTestKey), Alias: "ci-bot", Team: "team-1", Org: "org-1", Permissions: bus.Permissions{AllServers: true}}}
	m := &nats.Msg{Subject: bus.ToolRPC(server), Data: []byte(body), Header: env.Header()}
	reply, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", reqID, err)
	}
	return reply
}

// readUsage returns every event in the usage stream, by request id.
func readUsage(t *testing.T, js jetstream.JetStream, want int) map[string]jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, bus.StreamUsage, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]jetstream.Msg{}
	for len(out) < want {
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var ev bus.UsageEvent
			json.Unmarshal(m.Data(), &ev)
			out[ev.RequestID] = m
		}
		if n == 0 {
			t.Fatalf("usage stream: %d events, want %d", len(out), want)
		}
	}
	return out
}

func TestUsageEventsFieldByField(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	f := usageUpstream(t)
	gh, err := Start(nc, bus.ServerSpec{Name: "github", URL: f.URL(), CostPerQuery: map[string]float64{"": 0.01, "search": 0.05}}, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	down, err := Start(nc, bus.ServerSpec{Name: "down", URL: upstreamtest.ClosedURL(t), CostPerQuery: map[string]float64{"": 1}}, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	before := time.Now()
	type call struct {
		server, id, body string
		out              int // reply size, 0 for a gateway failure
	}
	calls := []call{
		{server: "github", id: "req-ok", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}`},
		{server: "github", id: "req-upstream-error", body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"bad"}}`},
		{server: "github", id: "req-list", body: `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`},
		{server: "down", id: "req-failed", body: `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"search"}}`},
	}
	for i, c := range calls {
		reply := callWorker(t, nc, c.server, c.id, c.body)
		if c.server == "down" {
			if reply.Header.Get("Nats-Service-Error-Code") == "" {
				t.Fatalf("call to a closed port succeeded: %s", reply.Data)
			}
			continue
		}
		calls[i].out = len(reply.Data)
	}
	after := time.Now()
	// Stop flushes what is queued: every event is in the stream afterwards.
	gh.Stop()
	down.Stop()
	got := readUsage(t, js, len(calls))

	want := map[string]bus.UsageEvent{
		"req-ok":             {Server: "github", Tool: "search", Method: "tools/call", Status: "ok", Cost: 0.05},
		"req-upstream-error": {Server: "github", Tool: "bad", Method: "tools/call", Status: "error", ErrorCode: "-32602"},
		"req-list":           {Server: "github", Method: "tools/list", Status: "ok"},
		"req-failed":         {Server: "down", Tool: "search", Method: "tools/call", Status: "failed", ErrorCode: bus.ErrUpstreamUnavailable.Code},
	}
	for _, c := range calls {
		m, ok := got[c.id]
		if !ok {
			t.Fatalf("no event for %s", c.id)
		}
		raw := string(m.Data())
		var ev bus.UsageEvent
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		w := want[c.id]
		w.RequestID, w.KeyID, w.KeyAlias, w.Team, w.OrgID, w.IPClass = c.id, bus.HashKey(usageTestKey), "ci-bot", "team-1", "org-1", bus.Internal
		w.BytesIn, w.BytesOut = len(c.body), c.out
		if ev.Time.Before(before.Add(-time.Millisecond)) || ev.Time.After(after) || ev.DurationMS <= 0 || ev.DurationMS > float64(after.Sub(before).Milliseconds()+1) {
			t.Errorf("%s: time %v, duration %v ms, outside the call (%v .. %v)", c.id, ev.Time, ev.DurationMS, before, after)
		}
		ev.Time, ev.DurationMS = time.Time{}, 0
		if ev != w {
			t.Errorf("%s:\n got %+v\nwant %+v", c.id, ev, w)
		}
		if subj := bus.UsageSubject("team-1", c.server, w.Tool); m.Subject() != subj {
			t.Errorf("%s: subject %s, want %s", c.id, m.Subject(), subj)
		}
		if id := m.Headers().Get(jetstream.MsgIDHeader); id != c.id {
			t.Errorf("%s: Nats-Msg-Id %q", c.id, id)
		}
		if strings.Contains(raw, usageTestKey) {
			t.Errorf("%s: the event holds the caller's key: %s", c.id, raw)
		}
		if !strings.Contains(raw, `"key_id":"`+bus.HashKey(usageTestKey)+`"`) {
			t.Errorf("%s: key_id is not the key's hash: %s", c.id, raw)
		}
	}
	if s := gh.UsageStats(); s.Stored != 3 || s.Dropped != 0 || s.Failed != 0 {
		t.Errorf("github stats %+v", s)
	}
}

// With no usage stream (or no JetStream) events are retried for a while and
// then counted as lost and warned about, once; the calls themselves succeed
// as before. (That a call
// never waits for its event is TestUsageFullQueueDropsWithoutWaiting.)
func TestUsageWithoutStreamNeverFailsACall(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	f := usageUpstream(t)
	lw := &lockedWriter{}
	w, err := Start(nc, bus.ServerSpec{Name: "github", URL: f.URL()}, Options{Log: slog.New(slog.NewTextHandler(lw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	w.usage.retryFor = 300 * time.Millisecond // retried, then given up (usageRetryFor)
	nc.Flush()
	const n = 20
	for i := range n {
		reply := callWorker(t, nc, "github", "req-"+string(rune('a'+i)), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`)
		if !strings.Contains(string(reply.Data), "found") {
			t.Fatalf("call %d: %s", i, reply.Data)
		}
	}
	bustest.Eventually(t, 30*time.Second, "every event given up", func() error {
		if s := w.UsageStats(); s.Failed < n {
			return fmt.Errorf("stats %+v, want %d failed", s, n)
		}
		return nil
	})
	if s := w.UsageStats(); s.Stored != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got := lw.String(); strings.Count(got, "usage event not stored") != 1 {
		t.Fatalf("want one rate-limited warning, got:\n%s", got)
	}
}

// A full queue drops the event at once and counts it.
func TestUsageFullQueueDropsWithoutWaiting(t *testing.T) {
	w := &Worker{log: quietLog()}
	w.usage.started = true // no publisher draining the queue
	w.usage.queue = make(chan bus.UsageEvent, 2)
	done := make(chan struct{})
	go func() {
		for range 5 {
			w.usage.enqueue(w, bus.UsageEvent{RequestID: "r"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // nothing drains the queue: only a blocking enqueue gets here
		t.Fatal("enqueue blocked on a full queue")
	}
	if s := w.UsageStats(); s.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 dropped", s)
	}
}

// lockedWriter is a log sink safe for concurrent writers.
type lockedWriter = bustest.Buffer

// Events the stream cannot take for a while (no stream, as while a stream
// has no leader after a NATS node is lost) are retried and all stored once it
// answers, each exactly once (Nats-Msg-Id), none lost.
func TestUsageEventsSurviveAnOutage(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	f := usageUpstream(t)
	lw := &lockedWriter{}
	w, err := Start(nc, bus.ServerSpec{Name: "github", URL: f.URL()}, Options{Log: slog.New(slog.NewTextHandler(lw, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	nc.Flush()
	const n = 30
	for i := range n {
		reply := callWorker(t, nc, "github", fmt.Sprintf("req-%d", i), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`)
		if !strings.Contains(string(reply.Data), "found") {
			t.Fatalf("call %d: %s", i, reply.Data)
		}
	}
	bustest.Eventually(t, 30*time.Second, "events waiting to be retried", func() error { return bustest.AtLeast("events retried", w.UsageStats().Retried, 1) })
	js, _ := jetstream.New(nc)
	s, err := bus.UsageStream(context.Background(), js, bus.UsageStreamOptions{MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "every event stored once the stream answers", func() error { return bustest.AtLeast("events stored", w.UsageStats().Stored, n) })
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st := w.UsageStats(); info.State.Msgs != n || st.Failed != 0 || st.Dropped != 0 {
		t.Fatalf("stream holds %d events, want %d; stats %+v", info.State.Msgs, n, st)
	}
	if got := lw.String(); strings.Count(got, "retrying them") != 1 {
		t.Fatalf("want one rate-limited retry warning, got:\n%s", got)
	}
}

// A stream that takes events but never acknowledges them (as while it has no
// leader) does not back the queue up: past usageMaxPending unacknowledged
// events, new ones wait in the retry buffer, the queue keeps draining, and
// nothing is dropped; all are stored once the stream answers.
func TestUsageStalledStreamNeverBacksUpTheQueue(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	// Takes every usage event and acknowledges none.
	blackhole, err := nc.Subscribe(bus.Root+".usage.>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	f := usageUpstream(t)
	w, err := Start(nc, bus.ServerSpec{Name: "github", URL: f.URL()}, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	const batch, batches = 1000, 6 // more than the queue and the pending window together
	for b := range batches {
		for i := range batch {
			w.usage.enqueue(w, bus.UsageEvent{RequestID: fmt.Sprintf("req-%d-%d", b, i), Server: "github", Tool: "search"})
		}
		bustest.Eventually(t, 30*time.Second, "the queue drains while the stream acknowledges nothing", func() error {
			w.usage.mu.Lock()
			q := w.usage.queue
			w.usage.mu.Unlock()
			return bustest.Want("events queued", len(q), 0)
		})
	}
	if s := w.UsageStats(); s.Dropped != 0 {
		t.Fatalf("%d events dropped while the stream stalled", s.Dropped)
	}
	_ = blackhole.Unsubscribe()
	js, _ := jetstream.New(nc)
	s, err := bus.UsageStream(context.Background(), js, bus.UsageStreamOptions{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 60*time.Second, "every event stored once the stream answers", func() error {
		info, err := s.Info(context.Background())
		if err != nil {
			return err
		}
		return bustest.Want("events in the stream", info.State.Msgs, uint64(batch*batches))
	})
	if st := w.UsageStats(); st.Dropped != 0 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
