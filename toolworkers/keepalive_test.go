package toolworkers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Answers that come as an SSE stream must not cost a new TCP connection per
// call: the rest of the stream is drained so the connection is reused.
func TestSSEAnswersReuseConnections(t *testing.T) {
	f, conns := connCountingUpstream(t)
	f.call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"ok\":true}}\n\n", m.ID)
		// Like the go-sdk server, end the stream a moment after the response,
		// so the client sees the answer before the end of the body.
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
	}
	c := f.client(t)
	for i := 0; i < 50; i++ {
		if _, err := c.Call(context.Background(), "tools/call", nil, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // a steady pace; streams end 5 ms after their answer
	}
	// A few connections serve while others finish their streams; without the
	// drain every call dials (50).
	if n := conns.Load(); n > 8 {
		t.Fatalf("50 calls answered over SSE opened %d connections, want them reused", n)
	}
}

// Back-to-back calls to an upstream that ends its stream right after the
// answer (the go-sdk server does) all use one connection: the client waits
// for the end briefly instead of leaving it to the background, where the next
// call would race it and dial.
func TestBackToBackSSEAnswersUseOneConnection(t *testing.T) {
	f, conns := connCountingUpstream(t)
	f.call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"ok\":true}}\n\n", m.ID)
		w.(http.Flusher).Flush()
		time.Sleep(time.Millisecond) // the handler returns a moment after its answer
	}
	c := f.client(t)
	for i := 0; i < 100; i++ {
		if _, err := c.Call(context.Background(), "tools/call", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// One for the session (and perhaps one for the GET stream); a slow moment
	// under load may cost one more. Without the wait it is one per stream
	// still draining: 10 or more here.
	if n := conns.Load(); n > 4 {
		t.Fatalf("100 back-to-back calls opened %d connections, want them to reuse one", n)
	}
}

// connCountingUpstream is a fakeUpstream that counts the TCP connections
// made to it.
func connCountingUpstream(t *testing.T) (*fakeUpstream, *atomic.Int32) {
	conns := &atomic.Int32{}
	f := &fakeUpstream{t: t, replies: make(chan seen, 16)}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f, conns
}
