package upstream

import "sync"

// goroutines owns the goroutines an upstream client starts: its Close stops
// new ones from starting and waits for those running, so a closed client
// leaves nothing behind. What each runs must end when the client's context
// does (every client has one that Close cancels).
type goroutines struct {
	mu      sync.Mutex
	closing bool // set by wait: spawn starts nothing more
	wg      sync.WaitGroup
}

// spawn runs f in a goroutine wait waits for; false (f not run) once wait
// has begun.
func (g *goroutines) spawn(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// wait refuses new goroutines and waits for those running.
func (g *goroutines) wait() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.wg.Wait()
}
