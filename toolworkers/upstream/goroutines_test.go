package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// wait waits for what spawn started, and spawn starts nothing once wait began.
func TestGoroutinesWaitAndRefuse(t *testing.T) {
	var g goroutines
	release := make(chan struct{})
	var ran atomic.Bool
	if !g.spawn(func() { <-release; ran.Store(true) }) {
		t.Fatal("spawn refused before wait")
	}
	waited := make(chan struct{})
	go func() { g.wait(); close(waited) }()
	close(release)
	<-waited
	if !ran.Load() {
		t.Fatal("wait returned before the goroutine it owns ended")
	}
	if g.spawn(func() { t.Error("ran after wait") }) {
		t.Fatal("spawn started a goroutine after wait")
	}
}

// Close waits for what the client runs in the background: here a request the
// upstream sent on its GET stream, still being relayed when Close is called.
// By the time Close returns, the relay has returned (its context ended by
// Close) and so has the POST of its answer, which the upstream never
// answers: Close ended it too.
func TestStreamableCloseWaitsForWhatItStarted(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m bus.Message
		switch r.Method {
		case http.MethodDelete:
			return
		case http.MethodGet:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"roots/list\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case m.IsResponse(): // the answer to roots/list: held until the client gives up
			<-r.Context().Done()
		case m.Method == "initialize":
			w.Header().Set("Mcp-Session-Id", "sess-1")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":{},"serverInfo":{"name":"f","version":"1"}}}`, m.ID, bus.LatestProtocolVersion)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	t.Cleanup(up.Close)
	var answered atomic.Bool // the POST of the answer to roots/list returned
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := http.DefaultTransport.RoundTrip(r)
		if bytes.Contains(body, []byte(`"id":5`)) {
			answered.Store(true)
		}
		return resp, err
	})}
	ev := &blockingEvents{asked: make(chan struct{})}
	c := newStreamableClient("s", up.URL+"/mcp", http.Header{}, bus.LatestProtocolVersion, hc)
	c.events = ev
	if _, err := c.Info(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-ev.asked
	c.Close()
	if !ev.returned.Load() {
		t.Fatal("Close returned while a request from the GET stream was still being relayed")
	}
	if !answered.Load() {
		t.Fatal("Close returned while the answer to a request from the GET stream was still being sent")
	}
}

// blockingEvents holds a server-to-client request until its context ends.
type blockingEvents struct {
	asked    chan struct{}
	returned atomic.Bool
}

func (e *blockingEvents) SessionOpened()                              {}
func (e *blockingEvents) SessionLost()                                {}
func (e *blockingEvents) SessionNotification(string, json.RawMessage) {}
func (e *blockingEvents) ServerRequest(ctx context.Context, m *bus.Message) []byte {
	close(e.asked)
	<-ctx.Done()
	e.returned.Store(true)
	return Refusal(m.ID, CodeInternal, "the client went away")
}
