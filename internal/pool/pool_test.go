package pool

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
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
// grown), and the slots are all free again after each.
func TestPoolReusesGoroutines(t *testing.T) {
	p := New(4)
	ids := map[string]bool{}
	for range 50 {
		done := make(chan string)
		for !p.Go(func() { done <- goroutineID() }) {
			runtime.Gosched() // the previous task's slot is being freed
		}
		ids[<-done] = true
	}
	if len(ids) > 2 {
		t.Fatalf("50 sequential tasks ran on %d goroutines, want them to reuse one", len(ids))
	}
	// The last task's slot is freed after it sent its answer: wait for it
	// (a loaded machine may not run that goroutine for a while; the bound
	// only catches a slot never freed).
	bustest.Eventually(t, 10*time.Second, "every slot free after every task ended", func() error {
		if n := p.InFlight(); n != 0 {
			return fmt.Errorf("%d slots still taken", n)
		}
		return nil
	})
}
