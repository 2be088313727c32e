package bus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// A worker whose connection moves while it runs a call (its NATS node died;
// here the server drops it and it reconnects) is no longer granted a reply
// subject that nats-server granted per request, so its answer is refused and
// lost. Its sender, hearing nothing, recalls the call on the worker's own
// subject; the worker sends the kept answer again, and the call succeeds
// instead of failing as lost. A request whose answerer is known gets a reply
// subject the worker may publish to by its own grant (bus.ReplyFrom): that
// answer survives the move and needs no recall.
func TestLivenessRecallRecoversAnAnswerLostAsTheConnectionMoved(t *testing.T) {
	t.Run("reply granted per request", func(t *testing.T) { connectionMoves(t, bus.ToolOAuthStart("x"), 1) })
	t.Run("reply tagged for the server", func(t *testing.T) { connectionMoves(t, bus.ToolRPC("x"), 0) })
}

func connectionMoves(t *testing.T, subject string, recalls uint64) {
	ingress := bus.BusUser{User: "ing", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleIngress}}
	worker := bus.BusUser{User: "wrk", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleWorkers}, Servers: []string{"x"}}
	ns, err := natsnode.StartEmbedded(natsnode.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Users: []bus.BusUser{ingress, worker}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	connect := func(u bus.BusUser, opts ...nats.Option) *nats.Conn {
		opts = append(opts, nats.UserInfo(u.User, u.Password), nats.CustomInboxPrefix(bus.InboxPrefix(u.User)))
		nc, err := nats.Connect(ns.ClientURL(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	moved := make(chan struct{}, 1)
	wnc := connect(worker, nats.ReconnectWait(20*time.Millisecond), nats.ReconnectHandler(func(*nats.Conn) { moved <- struct{}{} }))
	responder := bus.NewResponder(wnc)
	t.Cleanup(responder.Close)
	taken := make(chan micro.Request, 1)
	svc, err := micro.AddService(wnc, micro.Config{Name: "w", Version: "1.0.0", Endpoint: &micro.EndpointConfig{
		Subject: subject, QueueGroup: bus.ToolQueue("x"),
		Handler: micro.HandlerFunc(func(req micro.Request) {
			ok, finished := responder.Take(req)
			if !ok {
				t.Error("the request was dropped as late")
				return
			}
			// The acknowledgement reaches the sender before the move.
			go func() { defer finished(); _ = wnc.Flush(); taken <- req }()
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	wnc.Flush()

	r, err := bus.NewWorkerRequester(connect(ingress, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { t.Logf("ingress: %v", err) })), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type result struct {
		m   *nats.Msg
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := r.Request(ctx, &nats.Msg{Subject: subject, Data: []byte("{}")})
		done <- result{m, err}
	}()
	req := <-taken
	// The connection moves: the server drops it, it comes back.
	cid, err := wnc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	<-moved
	denied := make(chan error, 1)
	wnc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case denied <- err:
		default:
			t.Logf("worker: %v", err)
		}
	})
	if err := responder.Reply(req).Respond([]byte("the answer")); err != nil {
		t.Fatal(err)
	}
	// A subject the worker may never publish to, as a marker: violations
	// come in order, so the marker's is first unless the answer was refused.
	_ = wnc.Publish(bus.SubjectKeyGenerate, nil)
	wnc.Flush()
	select {
	case err := <-denied:
		refused := !strings.Contains(err.Error(), bus.SubjectKeyGenerate)
		if refused != (recalls > 0) {
			t.Fatalf("answer refused after the move: %v (%v), want %v", refused, err, recalls > 0)
		}
	case <-ctx.Done():
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("the call failed (%v) though its worker lived and had the answer", res.err)
	}
	if string(res.m.Data) != "the answer" {
		t.Fatalf("answer %q", res.m.Data)
	}
	if n := responder.Recalled.Load(); n != recalls {
		t.Fatalf("%d answers sent again for a recall, want %d", n, recalls)
	}
}
