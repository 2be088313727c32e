package bustest

import (
	"context"
	"sync"
)

// ExpiringContext returns a child of parent whose deadline passes when the test
// calls expire (Err is context.DeadlineExceeded), not at a time on the clock:
// a test can end a call by its deadline once the call is where it wants it.
func ExpiringContext(parent context.Context) (ctx context.Context, expire func()) {
	e := &expiring{Context: parent, done: make(chan struct{})}
	var once sync.Once
	return e, func() { once.Do(func() { close(e.done) }) }
}

type expiring struct {
	context.Context
	done chan struct{}
}

func (e *expiring) Done() <-chan struct{} { return e.done }

func (e *expiring) Err() error {
	select {
	case <-e.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}
