package bus_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// A request whose worker takes it and then dies (its connection gone, so no
// heartbeat) fails with the worker-lost error long before its own deadline.
func TestLivenessWorkerDiesAfterAccepting(t *testing.T) {
	ns, r := requester(t)
	worker := bustest.Conn(t, ns)
	took := make(chan struct{})
	if _, err := worker.Subscribe("tool.x", func(m *nats.Msg) {
		if _, live := bus.AcceptBy(m.Header); !live {
			t.Error("the request did not ask for liveness")
		}
		bus.Progress(worker, m.Reply, bus.ProgressAccepted, m.Header.Get(bus.HeaderAcceptBy))
		worker.Flush()
		close(took)
		go worker.Close() // dies mid-call: no heartbeat, no answer
	}); err != nil {
		t.Fatal(err)
	}
	worker.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.Request(ctx, &nats.Msg{Subject: "tool.x", Data: []byte("{}")})
	<-took
	if !bus.IsLivenessError(err) || ctx.Err() != nil {
		t.Fatalf("err = %v (ctx %v), want a liveness error before the deadline", err, ctx.Err())
	}
	if e := bus.LivenessError(bus.ServerSpec{Name: "x"}, err); e.Kind != bus.ErrWorkerLost || e.Message != `the worker serving "x" stopped while this call ran` {
		t.Fatalf("error %v %q", e.Kind.Code, e.Message)
	}
}

// Heartbeats keep a long call alive past LostAfter; the answer arrives.
func TestLivenessHeartbeatsKeepALongCall(t *testing.T) {
	ns, r := requester(t)
	worker := bustest.Conn(t, ns)
	if _, err := worker.Subscribe("tool.x", func(m *nats.Msg) {
		bus.Progress(worker, m.Reply, bus.ProgressAccepted, m.Header.Get(bus.HeaderAcceptBy))
		go func() {
			// Beats for longer than LostAfter, then answers. Real time: the
			// requester's silence timer runs on the wall clock over a real connection.
			for end := time.Now().Add(bus.LostAfter + time.Second); time.Now().Before(end); time.Sleep(bus.HeartbeatEvery) {
				bus.Progress(worker, m.Reply, bus.ProgressRunning, m.Header.Get(bus.HeaderAcceptBy))
			}
			_ = worker.Publish(m.Reply, []byte("done"))
		}()
	}); err != nil {
		t.Fatal(err)
	}
	worker.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reply, err := r.Request(ctx, &nats.Msg{Subject: "tool.x"})
	if err != nil || string(reply.Data) != "done" {
		t.Fatalf("reply %v, err %v", reply, err)
	}
}

// A replica that never takes a request (frozen) is left for one that does:
// the request is sent again, and only the live one answers.
func TestLivenessFrozenReplicaIsBypassed(t *testing.T) {
	ns, r := requester(t)
	frozen := bustest.Conn(t, ns)
	got := make(chan *nats.Msg, 16)
	if _, err := frozen.Subscribe("tool.x", func(m *nats.Msg) { got <- m }); err != nil { // takes nothing
		t.Fatal(err)
	}
	frozen.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := r.Request(ctx, &nats.Msg{Subject: "tool.x"})
	if !bus.IsLivenessError(err) {
		t.Fatalf("err = %v, want not taken", err)
	}
	if e := bus.LivenessError(bus.ServerSpec{Name: "x"}, err); e.Kind != bus.ErrWorkerLost || len(got) != bus.AcceptAttempts {
		t.Fatalf("%s %q after %d sends, want %d", e.Kind.Code, e.Message, len(got), bus.AcceptAttempts)
	}
	// Every copy it holds is past its accept-by: a replica that wakes now
	// must drop them all.
	for range bus.AcceptAttempts {
		m := <-got
		if by, live := bus.AcceptBy(m.Header); !live || time.Now().Before(by) {
			t.Fatalf("a held copy is still within its accept-by (%v)", by)
		}
	}
	// A live replica answers the same request.
	live := bustest.Conn(t, ns)
	if _, err := live.Subscribe("tool.x", func(m *nats.Msg) {
		bus.Progress(live, m.Reply, bus.ProgressAccepted, m.Header.Get(bus.HeaderAcceptBy))
		_ = live.Publish(m.Reply, []byte("ok"))
	}); err != nil {
		t.Fatal(err)
	}
	live.Flush()
	frozen.Close()
	reply, err := r.Request(ctx, &nats.Msg{Subject: "tool.x"})
	if err != nil || string(reply.Data) != "ok" {
		t.Fatalf("reply %v, err %v", reply, err)
	}
	// Nobody subscribed: no responders at once.
	if _, err := r.Request(ctx, &nats.Msg{Subject: "tool.none"}); err != nats.ErrNoResponders {
		t.Fatalf("no subscriber: %v", err)
	}
}

// A replica that takes a request after its accept-by only because it was
// late (busy, or resumed from a freeze: its clock agrees with the sender's)
// makes the sender try again, not turn liveness off as for a clock ahead.
func TestLivenessLateReplicaIsNotClockSkew(t *testing.T) {
	for _, c := range []struct {
		name   string
		ahead  time.Duration
		skewed bool
	}{{"late", 0, false}, {"clock ahead", 5 * time.Second, true}} {
		t.Run(c.name, func(t *testing.T) {
			ns, r := requester(t)
			worker := bustest.Conn(t, ns)
			n := 0
			if _, err := worker.Subscribe("tool.x", func(m *nats.Msg) {
				n++
				if n == 1 { // dropped as past its accept-by, saying its clock
					_ = worker.PublishMsg(&nats.Msg{Subject: m.Reply, Header: nats.Header{
						bus.HeaderProgress: {bus.ProgressExpired}, bus.HeaderAcceptBy: {m.Header.Get(bus.HeaderAcceptBy)},
						bus.HeaderNow: {strconv.FormatInt(time.Now().Add(c.ahead).UnixMilli(), 10)}}})
					return
				}
				_ = worker.Publish(m.Reply, []byte("ok"))
			}); err != nil {
				t.Fatal(err)
			}
			worker.Flush()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			reply, err := r.Request(ctx, &nats.Msg{Subject: "tool.x"})
			if err != nil || string(reply.Data) != "ok" {
				t.Fatalf("reply %v, err %v", reply, err)
			}
			if r.Skewed() != c.skewed {
				t.Fatalf("liveness off (clock skew assumed): %v, want %v", r.Skewed(), c.skewed)
			}
		})
	}
}

// requester starts a NATS server and a WorkerRequester on it, closed with
// the test; workers of the test connect to the server it returns.
func requester(t *testing.T) (*server.Server, *bus.WorkerRequester) {
	t.Helper()
	ns := bustest.Server(t)
	r, err := bus.NewWorkerRequester(bustest.Conn(t, ns), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return ns, r
}

// A request to a server's workers from a user's connection is answered on a
// reply subject tagged with the server's name (bus.ReplyFrom grants it to
// that server's workers); a message there tagged as another server is not
// its answer.
func TestLivenessReplyTaggedForTheAnswerer(t *testing.T) {
	ns := bustest.Server(t)
	asker, err := nats.Connect(ns.ClientURL(), nats.CustomInboxPrefix(bus.InboxPrefix("ing")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(asker.Close)
	r, err := bus.NewWorkerRequester(asker, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	worker := bustest.Conn(t, ns)
	if _, err := worker.Subscribe(bus.ToolRPC("x"), func(m *nats.Msg) {
		if !server.SubjectMatchesFilter(m.Reply, bus.ReplyFrom("x")) || !strings.HasPrefix(m.Reply, bus.ReplyPrefix("ing")+".") {
			t.Errorf("reply subject %q: not under the asker's prefix, or not one x's workers are granted", m.Reply)
		}
		posed := strings.TrimSuffix(m.Reply, ".x") + ".y"
		_ = worker.Publish(posed, []byte("posed as y"))
		_ = worker.Publish(m.Reply, []byte("from x"))
	}); err != nil {
		t.Fatal(err)
	}
	worker.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reply, err := r.Request(ctx, &nats.Msg{Subject: bus.ToolRPC("x"), Data: []byte("{}")})
	if err != nil || string(reply.Data) != "from x" {
		t.Fatalf("answer %v, %v; want x's", reply, err)
	}
	for subject, want := range map[string]string{bus.ToolRPC("a"): "a", bus.ToolInfo("a-b"): "a-b", bus.SubjectRouterRPC: bus.GatewayToken,
		bus.LLMDeploymentRPC("d1"): bus.LLMSender, bus.ToolOAuthStart("a"): "", "tool.x": ""} {
		if got := bus.AnswererOf(subject); got != want {
			t.Errorf("AnswererOf(%q) = %q, want %q", subject, got, want)
		}
	}
}
