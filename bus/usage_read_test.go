package bus

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// ReadUsage reads the stream with gets only (no consumer): from the start, from a
// time, filtered by server, and following new events.
func TestReadUsage(t *testing.T) {
	nc, js := embeddedJS(t)
	ctx := context.Background()
	if _, err := UsageStream(ctx, js, UsageStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	publish := func(server string, n int) {
		for i := 0; i < n; i++ {
			if _, err := js.Publish(ctx, UsageSubject("t", server, "echo"), []byte(fmt.Sprintf(`{"server":%q,"n":%d}`, server, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish("a", 300) // more than one batch
	publish("b", 5)
	count := func(filter string, start UsageStart) int {
		n := 0
		if err := ReadUsage(ctx, nc, filter, start, false, func(UsageMsg) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(SubjectUsageAll, UsageStart{}); n != 305 {
		t.Fatalf("all events: %d, want 305", n)
	}
	if n := count(UsageFilter("", "b", ""), UsageStart{}); n != 5 {
		t.Fatalf("server b: %d, want 5", n)
	}
	future := time.Now().Add(time.Hour)
	if n := count(SubjectUsageAll, UsageStart{Time: &future}); n != 0 {
		t.Fatalf("from an hour ahead: %d", n)
	}
	if n := count(SubjectUsageAll, UsageStart{New: true}); n != 0 {
		t.Fatalf("new only, none new: %d", n)
	}
	// Following: only what comes after the start.
	fctx, cancel := context.WithCancel(ctx)
	got := make(chan UsageMsg, 10)
	done := make(chan error, 1)
	go func() {
		// From the sequence after the 305 stored: what comes next only.
		done <- ReadUsage(fctx, nc, SubjectUsageAll, UsageStart{Seq: 306}, true, func(m UsageMsg) error { got <- m; return nil })
	}()
	publish("c", 1)
	select {
	case m := <-got:
		if m.Subject != UsageSubject("t", "c", "echo") {
			t.Fatalf("followed %s", m.Subject)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a new event was not followed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
