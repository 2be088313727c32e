package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
)

// Answers that come as an SSE stream must not cost a new TCP connection per
// call: when the stream has not ended by the time the call returns, the rest
// is drained in the background, so the client keeps the connection (closing
// an unfinished body would close it). No pacing: the upstream holds each
// stream open after its answer until the call has returned, then ends it, and
// the test waits until the server is done with the connection: it is idle
// (kept) or closed (by the client).
func TestSSEAnswersReuseConnections(t *testing.T) {
	f, u := connCountingUpstream(t)
	ends := make(chan chan struct{}, 1)
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) }) // before the server's Close, which waits for the handlers
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"ok\":true}}\n\n", m.ID)
		w.(http.Flusher).Flush()
		end := make(chan struct{})
		select {
		case ends <- end:
		case <-quit:
		}
		select { // the stream ends when the test says so
		case <-end:
		case <-quit:
		}
		u.setLast(r.RemoteAddr)
	}
	c := fakeClient(t, f)
	for i := 0; i < 10; i++ {
		if _, err := c.Call(context.Background(), "tools/call", nil, nil); err != nil {
			t.Fatal(err)
		}
		u.setLast("")
		close(<-ends)
		bustest.Eventually(t, 30*time.Second, "the server is done with the answer's connection", u.lastSettled)
	}
	if n := u.closed(); n != 0 {
		t.Fatalf("the client closed %d connections of SSE answers (of %d opened), want every one kept", n, u.opened())
	}
}

// Back-to-back calls to an upstream that ends its stream right after the
// answer (the go-sdk server does) all use one connection: the client waits
// for the end (here as long as it takes) before it returns, so the next call
// finds the connection idle.
func TestBackToBackSSEAnswersUseOneConnection(t *testing.T) {
	f, u := connCountingUpstream(t)
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"ok\":true}}\n\n", m.ID)
		w.(http.Flusher).Flush()
		time.Sleep(time.Millisecond) // real time: the scenario is a handler that returns a moment after its answer
	}
	c := fakeClient(t, f)
	c.endWait = time.Minute // not a bound: the stream ends 1 ms after the answer
	for i := 0; i < 100; i++ {
		if _, err := c.Call(context.Background(), "tools/call", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// One for the calls; the GET stream, refused, may have taken the idle
	// one while the first call dialed. Without the wait it is one per stream
	// still draining: 10 or more here.
	if n := u.opened(); n > 2 {
		t.Fatalf("100 back-to-back calls opened %d connections, want them to reuse one", n)
	}
}

// connCountingUpstream is a fake upstream that follows the TCP connections
// made to it.
func connCountingUpstream(t *testing.T) (*upstreamtest.Fake, *connTracker) {
	u := &connTracker{state: map[string]http.ConnState{}}
	f := upstreamtest.NewUnstartedFake(t)
	f.Srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.state[c.RemoteAddr().String()] = s
		switch s {
		case http.StateNew:
			u.new++
		case http.StateClosed:
			u.closes++
		}
	}
	f.Srv.Start()
	return f, u
}

// connTracker is the server's view of its connections, by client address.
type connTracker struct {
	mu          sync.Mutex
	state       map[string]http.ConnState
	new, closes int
	last        string // the connection of the last answer that ended
}

func (u *connTracker) opened() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.new
}

func (u *connTracker) closed() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closes
}

func (u *connTracker) setLast(addr string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.last = addr
}

// lastSettled says whether the server is done with the last answer's
// connection: idle (kept by the client) or closed; if not, its state.
func (u *connTracker) lastSettled() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == "" {
		return errors.New("no answer's connection yet")
	}
	if s := u.state[u.last]; s != http.StateIdle && s != http.StateClosed {
		return fmt.Errorf("the last answer's connection is %v", s)
	}
	return nil
}
