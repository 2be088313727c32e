package toolworkers

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// An upstream ends an SSE answer stream right after the response, but that end
// arrives a moment after the response itself. The connection goes back to the
// pool only once the body is read to its end (closing an unfinished body makes
// Go dial a new connection next time), and the caller should not wait for it.
// So the body is drained in the background, and the next post, when no other
// is in flight (one call at a time: it would take the very connection being
// drained), waits for drains begun less than streamEndWait ago.

// streamEndWait bounds how long a post waits for the previous answer stream of
// its client to end.
const streamEndWait = 2 * time.Millisecond

// drainGate is a client's record of answer streams being drained.
type drainGate struct {
	posts atomic.Int32 // posts in flight

	mu      sync.Mutex
	pending int           // drains running
	idle    chan struct{} // closed when pending drops to 0; nil while 0
	last    time.Time     // when the newest drain began
}

// drain reads body to its end and closes it, in the background.
func (g *drainGate) drain(body io.ReadCloser) {
	g.mu.Lock()
	if g.pending == 0 {
		g.idle = make(chan struct{})
	}
	g.pending++
	g.last = time.Now()
	g.mu.Unlock()
	go func() {
		drainAndClose(body)
		g.mu.Lock()
		if g.pending--; g.pending == 0 {
			close(g.idle)
			g.idle = nil
		}
		g.mu.Unlock()
	}()
}

// enter begins a post; leave must follow. The lone post in flight first waits
// for drains that began less than streamEndWait ago (a stream that stays open
// longer is not about to end, so nobody waits for it).
func (g *drainGate) enter() {
	if g.posts.Add(1) != 1 {
		return
	}
	g.mu.Lock()
	idle, wait := g.idle, streamEndWait-time.Since(g.last)
	g.mu.Unlock()
	if idle == nil || wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	select {
	case <-idle:
	case <-t.C:
	}
	t.Stop()
}

func (g *drainGate) leave() { g.posts.Add(-1) }

func drainAndClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	_ = body.Close()
}
