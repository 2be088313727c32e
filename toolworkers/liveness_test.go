package toolworkers

import (
	"strconv"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// The worker's side of liveness: a request that asks for it is acknowledged
// and answered; one that arrives after its accept-by time (it waited in a
// frozen replica's buffers) or after its deadline is dropped without
// reaching the upstream.
func TestWorkerLiveness(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	f := usageUpstream(t)
	w, err := Start(nc, bus.ServerSpec{Name: "github", URL: f.URL()}, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	nc.Flush()
	send := func(id string, acceptBy, deadline time.Time) []*nats.Msg {
		env := bus.Envelope{RequestID: id, IPClass: bus.Internal, Deadline: deadline,
			Caller: bus.Identity{KeyID: "k", Permissions: bus.Permissions{AllServers: true}}}
		h := env.Header()
		h.Set(bus.HeaderAcceptBy, strconv.FormatInt(acceptBy.UnixMilli(), 10))
		inbox := nc.NewInbox()
		sub, err := nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.PublishMsg(&nats.Msg{Subject: bus.ToolRPC("github"), Reply: inbox, Data: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`), Header: h}); err != nil {
			t.Fatal(err)
		}
		var got []*nats.Msg
		for {
			m, err := sub.NextMsg(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: after %d messages: %v", id, len(got), err)
			}
			got = append(got, m)
			if p := m.Header.Get(bus.HeaderProgress); p == "" || p == bus.ProgressExpired {
				return got
			}
		}
	}
	upstreamCalls := func() int { return len(f.ByMethod("tools/call")) }

	got := send("in-time", time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if len(got) < 2 || got[0].Header.Get(bus.HeaderProgress) != bus.ProgressAccepted || bus.ReplyError(got[len(got)-1]) != nil {
		t.Fatalf("in time: %d messages, first %v", len(got), got[0].Header)
	}
	if upstreamCalls() != 1 {
		t.Fatalf("%d upstream calls, want 1", upstreamCalls())
	}

	got = send("late", time.Now().Add(-time.Second), time.Now().Add(time.Minute))
	if len(got) != 1 || got[0].Header.Get(bus.HeaderProgress) != bus.ProgressExpired {
		t.Fatalf("late: %d messages, first %v", len(got), got[0].Header)
	}
	// It says its clock, which agrees with the sender's: late, not skewed.
	if bus.ClockAhead(got[0].Header, time.Now()) {
		t.Fatalf("late: the worker's expired message %v reads as a clock ahead", got[0].Header)
	}
	// Past its deadline (but still within accept-by: a clock that says so):
	// refused without an upstream call.
	got = send("expired", time.Now().Add(time.Minute), time.Now().Add(-time.Second))
	if e := bus.ReplyError(got[len(got)-1]); e == nil || e.Kind != bus.ErrUpstreamTimeout {
		t.Fatalf("past its deadline: %v", e)
	}
	if upstreamCalls() != 1 || w.lateDropped.Load()+w.beats.Late.Load() != 2 || w.breaker.state() != "closed" {
		t.Fatalf("%d upstream calls (want 1), %d dropped (want 2), breaker %s", upstreamCalls(), w.lateDropped.Load()+w.beats.Late.Load(), w.breaker.state())
	}
}
