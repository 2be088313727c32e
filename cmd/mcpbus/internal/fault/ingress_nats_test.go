package fault

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// SIGKILL an ingress replica: clients of the other one are unaffected, and a
// session opened on the killed one goes on, with the same Mcp-Session-Id,
// on the survivor (sessions live in the replicated bucket).
func TestFaultIngressKilled(t *testing.T) {
	d := newDeployment(t, 3)
	d.service("core", "auth,registry,router")
	_, url1, _ := d.service("ingress-1", "ingress")
	ing2, url2, _ := d.service("ingress-2", "ingress")
	d.worker("worker-a")
	survivor := newClient(t, url1)
	doomed := newClient(t, url2)
	if r := doomed.call("echo", `{"text":"before"}`); !r.ok() {
		t.Fatalf("call on ingress-2: %v", r)
	}
	stop := make(chan struct{})
	var failures []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Go(func() {
		for j := 0; ; j++ {
			select {
			case <-stop:
				return
			default:
			}
			if r := survivor.call("echo", fmt.Sprintf(`{"text":"%d"}`, j)); !r.ok() {
				mu.Lock()
				failures = append(failures, r.String())
				mu.Unlock()
			}
		}
	})
	time.Sleep(500 * time.Millisecond)
	ing2.signal(syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	for _, f := range failures {
		t.Errorf("a call on the surviving ingress failed: %s", f)
	}
	moved := &client{url: url1 + "/mcp/demo", session: doomed.session, hc: doomed.hc}
	if r := moved.call("echo", `{"text":"after"}`); !r.ok() {
		t.Fatalf("the killed ingress's session on the survivor: %v", r)
	}
}

// SIGKILL each NATS node in turn under load (state with 3 replicas): the
// existing session goes on without a failure (an answer lost as a
// connection moves is recalled: bus/liveness_recall.go), new sessions work
// within seconds while the node is down (one the sessions bucket cannot take
// during its leader election is kept by the ingress and written after), a
// service can start during the outage, and the first session is intact
// after all three.
func TestFaultNATSNodeKilled(t *testing.T) {
	d := newDeployment(t, 3)
	d.service("core", "auth,registry,router")
	_, url, _ := d.service("ingress", "ingress")
	_, workerAdmin := d.worker("worker-a")
	c := newClient(t, url)
	key := generateKey(t, url, `{"key_alias":"kept"}`) // must outlive every node's loss
	echoed := 0                                        // echo calls answered: each must leave a usage event
	for i, node := range d.nodes {
		stop := make(chan struct{})
		var mu sync.Mutex
		ok, failed := 0, []string{}
		var wg sync.WaitGroup
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				r := c.call("echo", fmt.Sprintf(`{"text":"n%d-%d"}`, i, j))
				mu.Lock()
				if r.ok() {
					ok++
				} else {
					failed = append(failed, r.String())
				}
				mu.Unlock()
			}
		})
		time.Sleep(500 * time.Millisecond)
		node.signal(syscall.SIGKILL)
		// New sessions work again within seconds, the node still down.
		var fresh *client
		var last rpcResult
		took := waitFor(t, 40*time.Second, "a new session with a node down (last: "+fmt.Sprint(&last)+")", func() bool {
			fresh = &client{url: url + "/mcp/demo", hc: c.hc}
			began := time.Now()
			if last = fresh.initialize(); !last.ok() {
				t.Logf("initialize: %v after %s", last, time.Since(began).Round(time.Millisecond))
				return false
			}
			initialized := time.Now()
			last = fresh.call("echo", `{"text":"fresh"}`)
			t.Logf("new session: initialize %s, call %s: %v", initialized.Sub(began).Round(time.Millisecond), time.Since(initialized).Round(time.Millisecond), last)
			return last.ok()
		})
		// A service starts during the outage.
		// (For another server, so that every call of the session, and so
		// every usage event counted below, is worker-a's.)
		w, _ := d.workerFor(fmt.Sprintf("worker-during-outage-%d", i), "spare")
		w.stop()
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		mu.Lock()
		echoed += ok
		t.Logf("node %d killed: existing session %d calls ok, %d failed (%v); a new session worked %s after the kill",
			i, ok, len(failed), failed, took.Round(10*time.Millisecond))
		mu.Unlock()
		if len(failed) > 0 {
			t.Errorf("node %d: %d calls of the existing session failed", i, len(failed))
		}
		if took > 8*time.Second {
			t.Errorf("node %d: new sessions failed for %s after the kill, want <= 5 s (8 s allowed here for the shared 2 cores; 1-2 s measured)", i, took)
		}
		node.restart()
		waitFor(t, readyLimit, node.name+" back", func() bool { return fresh.call("echo", `{"text":"back"}`).ok() })
		time.Sleep(2 * time.Second) // the node catches up before the next one goes
	}
	// The first session survived all three outages, and so did the key.
	if r := c.call("echo", `{"text":"end"}`); !r.ok() {
		t.Fatalf("the first session after every node was lost once: %v", r)
	}
	kc := &client{url: url + "/mcp/demo", key: key, hc: c.hc}
	if r := kc.initialize(); !r.ok() {
		t.Fatalf("the virtual key after every node was lost once: %v", r)
	}
	echoed++ // its call below leaves an event too
	if r := kc.call("echo", `{"text":"key"}`); !r.ok() {
		t.Fatalf("a call with the virtual key after every node was lost once: %v", r)
	}
	// No usage event was lost: the worker counted none dropped or lost (each
	// unacknowledged one is retried), and the stream holds an event for every
	// answered call.
	resp, err := http.Get(workerAdmin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	usage := grep(string(body), "mcpbus_usage_events_total{")
	if strings.Contains(usage, `outcome="dropped"`) || strings.Contains(usage, `outcome="lost"`) {
		t.Errorf("the worker gave usage events up:\n%s", usage)
	}
	nc, err := nats.Connect(d.natsURLs, nats.UserInfo(busUser, busPass), nats.CustomInboxPrefix("_INBOX_"+busUser))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stored := 0
	deadline := time.Now().Add(60 * time.Second)
	for stored < echoed+1 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if s, err := js.Stream(ctx, "MCPBUS_USAGE"); err == nil {
			if info, err := s.Info(ctx, jetstream.WithSubjectFilter("mcpbus.v1.usage.*.demo.echo")); err == nil {
				stored = 0
				for _, n := range info.State.Subjects {
					stored += int(n)
				}
			}
		}
		cancel()
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("usage events for echo: %d stored for %d answered calls of the first session (and the fresh sessions' calls); worker: %s",
		stored, echoed+1, strings.ReplaceAll(usage, "\n", "; "))
	if stored < echoed+1 {
		t.Errorf("usage events lost: %d stored for %d answered calls", stored, echoed+1)
	}
}
