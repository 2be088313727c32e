// Package callset runs a service's calls on goroutines of their own within
// a bound, and cancels a running call by its request id: what the LLM and
// agent workers share (a call that takes minutes must not hold the
// subscription, and mcpbus.v1.cancel names the request to stop).
package callset

import (
	"context"
	"sync"
	"time"
)

// Set is the calls of one process.
type Set struct {
	slots    chan struct{}
	mu       sync.Mutex
	inflight map[string]context.CancelCauseFunc
}

// New makes a set of at most max concurrent calls.
func New(max int) *Set {
	return &Set{slots: make(chan struct{}, max), inflight: map[string]context.CancelCauseFunc{}}
}

// Go runs f on its own goroutine, or reports false when max calls run.
func (s *Set) Go(f func()) bool {
	select {
	case s.slots <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-s.slots }()
		f()
	}()
	return true
}

// Context is the context of call id: cancelled by Cancel(id) or CancelAll,
// ended at deadline. done releases it.
func (s *Set) Context(id string, deadline time.Time) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, stop := context.WithDeadline(ctx, deadline)
	if id != "" {
		s.mu.Lock()
		s.inflight[id] = cancel
		s.mu.Unlock()
	}
	return ctx, func() {
		if id != "" {
			s.mu.Lock()
			delete(s.inflight, id)
			s.mu.Unlock()
		}
		stop()
		cancel(nil)
	}
}

// Cancel cancels call id with cause, if it runs here.
func (s *Set) Cancel(id string, cause error) {
	s.mu.Lock()
	c := s.inflight[id]
	s.mu.Unlock()
	if c != nil {
		c(cause)
	}
}

// CancelAll cancels every running call with cause.
func (s *Set) CancelAll(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.inflight {
		c(cause)
	}
}
