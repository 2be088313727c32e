package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// A worker whose connection moves while it runs a call (its NATS node died;
// here the server drops it and it reconnects) is no longer granted the
// call's reply subject, so its answer is refused and lost. Its sender,
// hearing nothing, recalls the call on the worker's own subject; the worker
// sends the kept answer again, and the call succeeds instead of failing as
// lost.
func TestLivenessRecallRecoversAnAnswerLostAsTheConnectionMoved(t *testing.T) {
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
		Subject: bus.ToolRPC("x"), QueueGroup: bus.ToolQueue("x"),
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
		m, err := r.Request(ctx, &nats.Msg{Subject: bus.ToolRPC("x"), Data: []byte("{}")})
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
	wnc.Flush()
	select {
	case err := <-denied:
		t.Logf("the answer was refused after the move, as on a new node: %v", err)
	case <-ctx.Done():
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("the call failed (%v) though its worker lived and had the answer", res.err)
	}
	if string(res.m.Data) != "the answer" {
		t.Fatalf("answer %q", res.m.Data)
	}
	if n := responder.Recalled.Load(); n != 1 {
		t.Fatalf("%d answers sent again for a recall, want 1", n)
	}
}
