package usagepub

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// Events enqueued while the publisher closes are counted as lost, never a
// send on a closed queue (a call that ends as its service stops).
func TestEnqueueDuringClose(t *testing.T) {
	ns := bustest.Server(t)
	p := New(bustest.Conn(t, ns), slog.New(slog.DiscardHandler), "test", func(bus.UsageEvent) string { return "mcpbus.v1.usage.t.s.x" })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				p.Enqueue(bus.UsageEvent{RequestID: "r"})
			}
		})
	}
	p.Close()
	wg.Wait()
	p.Close() // twice is fine
	if stored, lost := p.Stats(); stored+lost == 0 {
		t.Fatal("no event accounted for")
	}
}
