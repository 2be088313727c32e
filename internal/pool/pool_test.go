package pool

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestPoolBoundsAndNeverBlocks(t *testing.T) {
	p := New(2)
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	for i := 0; i < 2; i++ {
		if !p.Go(func() { defer wg.Done(); <-release }) {
			t.Fatal("a free slot was refused")
		}
	}
	if p.Go(func() {}) {
		t.Fatal("a third task ran in a pool of two")
	}
	close(release)
	wg.Wait()
	done := make(chan struct{})
	for !p.Go(func() { close(done) }) {
	}
	<-done
}

// goroutineID is the running goroutine's number, from its stack header.
func goroutineID() string {
	var b [64]byte
	n := runtime.Stack(b[:], false)
	f := strings.Fields(string(b[:n]))
	return f[1]
}

// Tasks one after the other run on the same goroutine (its stack already
// grown), and the slots are all free again after each. In a synctest bubble:
// synctest.Wait returns once the pool goroutine is parked waiting for the
// next task, so the test does not depend on how the machine schedules it.
func TestPoolReusesGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(4)
		ids := map[string]bool{}
		for range 50 {
			done := make(chan string)
			if !p.Go(func() { done <- goroutineID() }) {
				t.Fatal("a free slot was refused")
			}
			ids[<-done] = true
			synctest.Wait() // the task has ended, its goroutine waits for the next
			if n := p.InFlight(); n != 0 {
				t.Fatalf("%d slots still taken after the task ended", n)
			}
		}
		if len(ids) != 1 {
			t.Fatalf("50 sequential tasks ran on %d goroutines, want them to reuse one", len(ids))
		}
		time.Sleep(poolIdle + time.Second) // the bubble's clock: the idle goroutine ends
	})
}
