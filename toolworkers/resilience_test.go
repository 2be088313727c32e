package toolworkers

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// In a synctest bubble: the limiter is channels and counters only, so the
// test sees a caller queued once every goroutine blocks, and a queued call's
// deadline passes without waiting for it.
func TestLimiterQueuesThenRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter("db", 2, 1)
		r1, _ := l.acquire(context.Background())
		r2, _ := l.acquire(context.Background())
		got := make(chan error, 1)
		go func() {
			r, err := l.acquire(context.Background()) // waits in the queue
			if err == nil {
				r()
			}
			got <- err
		}()
		synctest.Wait() // the third caller is blocked: in the queue
		if n := l.queued(); n != 1 {
			t.Fatalf("%d queued, want the third caller", n)
		}
		// The queue is full: the next call is refused at once, saying why.
		_, err := l.acquire(context.Background())
		if e := bus.AsError(err); e.Kind != bus.ErrUpstreamBusy || !strings.Contains(e.Message, `"db" is at its limit of 2 concurrent calls and 1 waiting`) {
			t.Fatalf("over the queue: %v", err)
		}
		r1()
		if err := <-got; err != nil {
			t.Fatalf("the queued call did not get the freed slot: %v", err)
		}
		// A waiter whose deadline passes gives up with its own error (the
		// bubble's clock moves on once everything waits).
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		r3, _ := l.acquire(context.Background())
		_, err = l.acquire(ctx)
		if e := bus.AsError(err); e.Kind != bus.ErrUpstreamBusy || !strings.Contains(e.Message, "before the call's deadline") {
			t.Fatalf("deadline while queued: %v", err)
		}
		r2()
		r3()
		if l.inFlight() != 0 || l.queued() != 0 {
			t.Fatalf("slots leaked: %d in flight, %d queued", l.inFlight(), l.queued())
		}
		if newLimiter("x", 0, 10) != nil {
			t.Fatal("max_concurrent_requests 0 should mean no limiter")
		}
	})
}

// The holders keep their slots until the limiter is full (a caller waits in
// its queue): then exactly the limit hold one, however the goroutines are
// scheduled. After that they come and go; the peak must stay the limit. In a
// synctest bubble, so "full" is when every goroutine is blocked.
func TestLimiterUnderLoadNeverExceedsMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiter("s", 3, 100)
		var mu sync.Mutex
		cur, peak := 0, 0
		full := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := l.acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				cur++
				peak = max(peak, cur)
				mu.Unlock()
				<-full
				mu.Lock()
				cur--
				mu.Unlock()
				r()
			}()
		}
		synctest.Wait() // every caller holds a slot or waits for one
		mu.Lock()
		held := cur
		if q, n := l.queued(), l.inFlight(); q == 0 || cur != n {
			t.Errorf("%d queued, %d holders counted of %d in flight", q, cur, n)
		}
		mu.Unlock()
		close(full)
		wg.Wait()
		if held != 3 || peak != 3 {
			t.Fatalf("%d held slots when the queue began, peak %d: want exactly the limit 3", held, peak)
		}
	})
}

func TestBreakerOpensProbesAndCloses(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b := newBreaker("api", 3, 30*time.Second)
	b.now = func() time.Time { return now }
	fail := bus.Errorf(bus.ErrUpstreamUnavailable, "refused")
	call := func(err error) error {
		done, refused := b.allow()
		if refused != nil {
			return refused
		}
		done(err)
		return nil
	}
	// JSON-RPC-level answers and auth problems do not trip it.
	for i := 0; i < 5; i++ {
		call(bus.Errorf(bus.ErrUpstreamAuth, "401"))
	}
	call(fail)
	call(fail)
	call(nil) // a success resets the streak
	if b.state() != "closed" {
		t.Fatalf("state %s after an interrupted streak", b.state())
	}
	for i := 0; i < 3; i++ {
		if err := call(fail); err != nil {
			t.Fatalf("call %d refused before the threshold: %v", i, err)
		}
	}
	err := call(nil)
	if e := bus.AsError(err); e.Kind != bus.ErrUpstreamUnavailable ||
		!strings.Contains(e.Message, `"api" is unavailable since 2026-11-22T10:00:00Z (3 consecutive failures)`) ||
		!strings.Contains(e.Message, "after 2026-11-22T10:00:30Z") {
		t.Fatalf("open breaker: %v", err)
	}
	now = now.Add(31 * time.Second)
	if b.state() != "half-open" {
		t.Fatalf("state %s after the cooldown", b.state())
	}
	// One probe goes through; others are refused while it runs.
	done, refused := b.allow()
	if refused != nil {
		t.Fatal("the probe was refused")
	}
	if _, r := b.allow(); r == nil {
		t.Fatal("a second call got through while the probe ran")
	}
	done(fail) // the probe fails: open again, still down since the first opening
	if err := call(nil); err == nil || !strings.Contains(err.Error(), "since 2026-11-22T10:00:00Z") {
		t.Fatalf("after a failed probe: %v", err)
	}
	now = now.Add(31 * time.Second)
	if err := call(nil); err != nil {
		t.Fatalf("the second probe was refused: %v", err)
	}
	if b.state() != "closed" {
		t.Fatalf("a successful probe left the breaker %s", b.state())
	}
}

func TestRetryable(t *testing.T) {
	down := bus.Errorf(bus.ErrUpstreamUnavailable, "refused")
	slow := bus.Errorf(bus.ErrUpstreamTimeout, "slow")
	for _, c := range []struct {
		method string
		err    error
		want   bool
	}{
		{"tools/list", down, true},
		{"resources/templates/list", down, true},
		{"tools/list", slow, false},
		{"tools/call", down, false},
		{"prompts/get", down, false},
	} {
		if got := retryable(c.method, c.err); got != c.want {
			t.Errorf("retryable(%s, %v) = %v", c.method, c.err, got)
		}
	}
}
