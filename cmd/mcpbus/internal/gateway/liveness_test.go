package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
)

// A worker replica that dies while it runs a call (its bus connection gone,
// as when its process is killed) is noticed by its heartbeats stopping: the
// call fails with MCPBUS_WORKER_LOST naming the server, long before the
// server's timeout (10 minutes here), whether the ingress sent the call
// straight to the worker or through the router. The worker is a separate
// bus user with the workers role, so its acknowledgement and heartbeats go
// through nats-server's response permission too.
func TestWorkerLostMidCall(t *testing.T) {
	for _, routerOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("router_only=%v", routerOnly), func(t *testing.T) {
			g, rc, wc := slowpokeOnItsOwnConn(t, routerOnly, nil)
			url := g.URL() + "/mcp/slowpoke"
			s := initSession(t, url, bearer(master))
			done := make(chan rawResponse, 1)
			go func() {
				done <- post(t, url, s, rpc("tools/call", 2, `{"name":"slow","arguments":{"seconds":5}}`))
			}()
			bustest.Eventually(t, 30*time.Second, "the upstream runs the call", func() error { return bustest.AtLeast("calls upstream", rc.callCount(), 1) })
			wc.Close() // the replica dies

			select {
			case r := <-done:
				if r.rpcErr.Code != -32027 || r.rpcErr.Message != `the worker serving "slowpoke" stopped while this call ran` ||
					!strings.Contains(string(r.body), "MCPBUS_WORKER_LOST") {
					t.Fatalf("call on a dead worker: HTTP %d %s", r.status, r.body)
				}
			case <-time.After(time.Minute): // a dead worker never answers: only liveness (or the 10m timeout) ends the call
				t.Fatalf("the call on a dead worker was not failed; logs:\n%s", g.logs.String())
			}
		})
	}
}

// A worker replica whose bus connection moves while it runs a call (as when
// its NATS node dies and it reconnects to another; here the server drops it
// and it comes back) is no longer granted the call's reply subject: its
// heartbeats and answer are refused. The sender recalls the call on the
// replica's own subject, which grants the subject again, and gets the kept
// answer: the call succeeds, straight from the ingress or through the
// router.
func TestWorkerConnectionMovesMidCall(t *testing.T) {
	for _, routerOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("router_only=%v", routerOnly), func(t *testing.T) {
			moved := make(chan struct{}, 1)
			g, rc, wc := slowpokeOnItsOwnConn(t, routerOnly, func(wc *nats.Conn) {
				wc.SetReconnectHandler(func(*nats.Conn) { moved <- struct{}{} })
			})
			url := g.URL() + "/mcp/slowpoke"
			s := initSession(t, url, bearer(master))
			done := make(chan rawResponse, 1)
			go func() {
				done <- post(t, url, s, rpc("tools/call", 2, `{"name":"slow","arguments":{"seconds":3}}`))
			}()
			bustest.Eventually(t, 30*time.Second, "the upstream runs the call", func() error { return bustest.AtLeast("calls upstream", rc.callCount(), 1) })
			cid, err := wc.GetClientID()
			if err != nil {
				t.Fatal(err)
			}
			if err := g.ns.DisconnectClientByID(cid); err != nil {
				t.Fatal(err)
			}
			<-moved
			r := <-done
			if r.rpcErr.Code != 0 || !strings.Contains(string(r.body), `"result"`) {
				t.Fatalf("the call whose worker's connection moved: HTTP %d %s", r.status, r.body)
			}
			if rc.callCount() != 1 {
				t.Fatalf("the upstream ran the call %d times, want once", rc.callCount())
			}
		})
	}
}

// slowpokeOnItsOwnConn starts a gateway whose server "slowpoke" (timeout
// 10m) is served by a worker on a bus connection of its own, as a separate
// bus user with the workers role, so a test can kill or move that
// connection. prepare, if set, gets the connection before the worker starts.
func slowpokeOnItsOwnConn(t *testing.T, routerOnly bool, prepare func(*nats.Conn)) (*testGateway, *recorder, *nats.Conn) {
	t.Helper()
	url, rc := upstream(t, "slowpoke")
	yaml := fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  slowpoke: {url: %q, timeout: 10m}\n", master, url)
	g := startGatewayOpts(t, yaml, nil, func(o *Options) {
		o.WorkerServers = []string{"elsewhere"} // slowpoke's worker runs on its own connection
		o.RouterOnly = routerOnly
	})
	cfg, err := config.Parse("config.yaml", []byte(yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	wc := roleConn(t, g.Gateway, bus.RoleWorkers)
	if prepare != nil {
		prepare(wc)
	}
	w, err := toolworkers.Start(wc, cfg.Servers[0], toolworkers.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	wc.Flush()
	return g, rc, wc
}

// A call's reply subject is one its server's workers may publish to by their
// bus permissions alone, not a response permission nats-server grants per
// delivered request: a worker's answer, acknowledgement and heartbeats go to
// the same reply, so each such grant lived for bus.ReplyWindow (about an
// hour) in nats-server's memory, one per call. Shown here by a second worker
// connection that never received the request publishing to its reply
// subject without a permission violation.
func TestCallReplySubjectNeedsNoResponsePermission(t *testing.T) {
	g, url := busGateway(t)
	spy, _ := tcpAs(t, url, "worker-a", busTestPassword)
	seen := make(chan string, 4)
	if _, err := spy.Subscribe(bus.ToolRPC("a"), func(m *nats.Msg) {
		select {
		case seen <- m.Reply:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	h := initSession(t, g.URL()+"/mcp/a", bearer(master))
	r := post(t, g.URL()+"/mcp/a", h, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`)
	if r.status != http.StatusOK || r.rpcErr.Code != 0 {
		t.Fatalf("call: HTTP %d %s", r.status, r.body)
	}
	var reply string
	select {
	case reply = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the workers' subject")
	}
	other, v := tcpAs(t, url, "worker-a", busTestPassword)
	if err := other.Publish(reply, []byte("late")); err != nil {
		t.Fatal(err)
	}
	// A subject worker-a may never publish to, as a marker: nats-server
	// reports violations in order, so the marker's comes first only if the
	// reply was allowed.
	if err := other.Publish(bus.SubjectKeyGenerate, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-v:
		if strings.Contains(err.Error(), reply) {
			t.Fatalf("a worker of the server may not publish to the call's reply subject %q by its permissions: %v", reply, err)
		}
		if !strings.Contains(err.Error(), bus.SubjectKeyGenerate) {
			t.Fatalf("unexpected error: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no permission violation for the marker")
	}
}
