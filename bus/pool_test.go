package bus

import (
	"sync"
	"testing"
)

func TestPoolBoundsAndNeverBlocks(t *testing.T) {
	p := NewPool(2)
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
