package callset

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A call is cancelled by its id, with the cause; a full set refuses more;
// a released call can no longer be cancelled by its id.
func TestSet(t *testing.T) {
	s := New(1)
	cause := errors.New("client left")
	ctx, done := s.Context("r1", time.Now().Add(time.Hour))
	running := make(chan struct{})
	finished := make(chan error)
	if !s.Go(func() { close(running); <-ctx.Done(); finished <- context.Cause(ctx) }) {
		t.Fatal("an empty set refused a call")
	}
	<-running
	if s.Go(func() {}) {
		t.Fatal("a full set took a second call")
	}
	s.Cancel("r2", cause) // not this call
	s.Cancel("r1", cause)
	if got := <-finished; !errors.Is(got, cause) {
		t.Fatalf("cause %v, want %v", got, cause)
	}
	done()
	ctx2, done2 := s.Context("r1", time.Now().Add(time.Hour))
	defer done2()
	s.CancelAll(cause)
	if !errors.Is(context.Cause(ctx2), cause) {
		t.Fatal("CancelAll missed a call")
	}
}
