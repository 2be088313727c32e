package upstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
)

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

func (s *eventSink) SessionOpened() { s.mu.Lock(); s.opened++; s.mu.Unlock() }
func (s *eventSink) SessionLost()   { s.mu.Lock(); s.lost++; s.mu.Unlock() }
func (s *eventSink) SessionNotification(method string, params json.RawMessage) {
	s.mu.Lock()
	s.notes = append(s.notes, method)
	s.mu.Unlock()
}
func (s *eventSink) ServerRequest(_ context.Context, m *bus.Message) []byte { return s.answers(m) }
func (s *eventSink) noted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notes...)
}

// A GET stream that ends is reopened, from the last event id the server gave.
func TestGETStreamReconnectsWithLastEventID(t *testing.T) {
	f := upstreamtest.NewFake(t)
	var mu sync.Mutex
	var lastIDs []string
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		if r.Method != http.MethodGet {
			upstreamtest.WriteJSONResult(w, m.ID, `{}`)
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
	c := fakeClient(t, f)
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
