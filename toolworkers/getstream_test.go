package toolworkers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"

	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/bustest"
)

// Right after notifications/initialized the worker opens the session's GET
// stream, with the session id, the protocol version and Accept:
// text/event-stream, and keeps it open (one GET, no reconnect loop).
func TestGETStreamOpenedAfterInitialize(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	e.toolText(t, caller("s1", "k1", ""), "echo")
	bustest.Eventually(t, 30*time.Second, "a GET reached the upstream", func() error { return bustest.AtLeast("GETs upstream", e.up.count("GET"), 1) })
	e.up.mu.Lock()
	var order []string
	for _, s := range e.up.seen {
		if s.method == http.MethodGet {
			order = append(order, "GET")
		} else if s.msg.Method == "initialize" || s.msg.Method == "notifications/initialized" {
			order = append(order, s.msg.Method)
		}
	}
	e.up.mu.Unlock()
	if strings.Join(order, " ") != "initialize notifications/initialized GET" {
		t.Fatalf("upstream saw %v, want initialize, notifications/initialized, then GET", order)
	}
	get := e.up.requests("GET")[0]
	init := e.up.requests("tools/call")[0]
	if get.header.Get("Accept") != "text/event-stream" || get.header.Get("Mcp-Session-Id") == "" ||
		get.header.Get("Mcp-Session-Id") != init.header.Get("Mcp-Session-Id") || get.header.Get("Mcp-Protocol-Version") == "" {
		t.Fatalf("GET headers %v", get.header)
	}
	// Real time: a reconnect loop (first backoff 100 ms) would show as a
	// second GET by then; a stream kept open shows nothing to wait on.
	time.Sleep(300 * time.Millisecond)
	if n := e.up.count("GET"); n != 1 {
		t.Fatalf("upstream got %d GETs, want the one stream kept open", n)
	}
	e.w.Stop()
	if n := e.up.count("DELETE"); n != 1 {
		t.Fatalf("upstream got %d DELETEs at stop, want 1", n)
	}
}

// A server without a GET stream answers 405: the worker does not ask again
// for that session, and calls work as before.
func TestGETStream405StopsTrying(t *testing.T) {
	up := newRelayUpstream(t)
	up.noGET = true
	listening := listeners()
	e := newRelayEnv(t, up)
	client := caller("s1", "k1", "")
	e.toolText(t, client, "echo")
	bustest.Eventually(t, 30*time.Second, "a GET reached the upstream", func() error { return bustest.AtLeast("GETs upstream", e.up.count("GET"), 1) })
	// The session's GET stream loop ends (one retrying waits out its backoff).
	bustest.Eventually(t, 30*time.Second, "the worker stops listening for a GET stream", func() error {
		if n := listeners(); n > listening {
			return fmt.Errorf("%d GET stream loops running, %d before the test", n, listening)
		}
		return nil
	})
	e.toolText(t, client, "echo")
	if n := e.up.count("GET"); n != 1 {
		t.Fatalf("upstream got %d GETs after a 405, want 1", n)
	}
}

// listeners counts the goroutines keeping a GET stream open (in any test's
// client: compare counts).
func listeners() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "toolworkers.(*streamableClient).listen(")
}

// The last event id the server gave is sent back as Last-Event-ID when the
// stream is reopened.
func TestSSEScannerLastEventID(t *testing.T) {
	sc := newSSEScanner(strings.NewReader("id: 7\ndata: {}\n\nid: 8\nevent: message\ndata: {\"a\":1}\n\n: comment\n\n"), 1<<10)
	for i, want := range []string{"7", "8"} {
		if _, err := sc.Next(); err != nil {
			t.Fatal(err)
		}
		if sc.LastID() != want {
			t.Fatalf("event %d: last id %q, want %q", i, sc.LastID(), want)
		}
	}
}

// eventSink records what a client reports outside calls.
type eventSink struct {
	mu      sync.Mutex
	opened  int
	lost    int
	notes   []string
	answers func(m *bus.Message) []byte
}

func (s *eventSink) sessionOpened() { s.mu.Lock(); s.opened++; s.mu.Unlock() }
func (s *eventSink) sessionLost()   { s.mu.Lock(); s.lost++; s.mu.Unlock() }
func (s *eventSink) sessionNotification(method string, params json.RawMessage) {
	s.mu.Lock()
	s.notes = append(s.notes, method)
	s.mu.Unlock()
}
func (s *eventSink) serverRequest(_ context.Context, m *bus.Message) []byte { return s.answers(m) }
func (s *eventSink) noted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notes...)
}

// A GET stream that ends is reopened, from the last event id the server gave.
func TestGETStreamReconnectsWithLastEventID(t *testing.T) {
	f := newFakeUpstream(t)
	var mu sync.Mutex
	var lastIDs []string
	f.call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		if r.Method != http.MethodGet {
			writeJSONResult(w, m.ID, `{}`)
			return
		}
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-Id"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		if n == 1 {
			io.WriteString(w, "id: ev-1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n")
			return // the stream ends
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	sink := &eventSink{}
	c := f.client(t)
	c.events = sink
	if _, err := c.Call(ctxTimeout(t, 5*time.Second), "tools/list", nil, nil); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the GET stream is reopened", func() error {
		mu.Lock()
		defer mu.Unlock()
		return bustest.AtLeast("GETs", len(lastIDs), 2)
	})
	mu.Lock()
	if lastIDs[0] != "" || lastIDs[1] != "ev-1" {
		t.Errorf("Last-Event-ID sent: %q, want none, then ev-1", lastIDs)
	}
	mu.Unlock()
	if got := sink.noted(); len(got) != 1 || got[0] != "notifications/tools/list_changed" {
		t.Errorf("notifications from the GET stream: %v", got)
	}
	c.Close()
}
