package fault

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A connector dials the cluster's leaf listeners, outbound only, and keeps
// serving its server while each NATS node in turn is killed: its link moves
// to another node on its own. Calls made during the move may fail (at once,
// with a clear error, never a hang); calls succeed again within seconds.
func TestFaultConnectorHubNodeKilled(t *testing.T) {
	d := newDeployment(t, 3)
	d.service("core", "auth,registry,router")
	_, url, _ := d.service("ingress", "ingress")
	t.Setenv("MCPBUS_CONNECTOR_PASSWORD", connPass)
	ccfg := filepath.Join(t.TempDir(), "connector.yaml")
	if err := os.WriteFile(ccfg, []byte(fmt.Sprintf("mcp_servers:\n  edge: {url: %q}\n", d.upstreamURL)), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	conn := start(t, "connector", "connector", "--hub", d.leafURLs, "--name", connUser, "--config", ccfg,
		"--admin-listen", admin, "--drain-timeout", "1s")
	waitFor(t, readyLimit, "the connector joined", func() bool {
		return strings.Contains(conn.logs(), "joined its hub") && ready("http://"+admin)
	})
	c := &client{url: url + "/mcp/edge", hc: http.Client{Timeout: 15 * time.Second}}
	waitFor(t, readyLimit, "a session on edge", func() bool {
		if !c.initialize().ok() {
			return false
		}
		r := c.call("echo", `{"text":"first"}`)
		if !r.ok() {
			t.Logf("first call: %v", r)
		}
		return r.ok()
	})

	for i, node := range d.nodes {
		stop := make(chan struct{})
		var mu sync.Mutex
		ok, failed, slowest := 0, map[string]int{}, time.Duration(0)
		var wg sync.WaitGroup
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				r := c.call("echo", fmt.Sprintf(`{"text":"n%d-%d"}`, i, j))
				took := time.Since(began)
				mu.Lock()
				if r.ok() {
					ok++
				} else {
					failed[r.msg]++
					slowest = max(slowest, took)
				}
				mu.Unlock()
				if !r.ok() {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
		time.Sleep(500 * time.Millisecond)
		node.signal(syscall.SIGKILL)
		back := waitFor(t, 40*time.Second, "calls through the connector again", func() bool {
			time.Sleep(200 * time.Millisecond)
			return c.call("echo", `{"text":"probe"}`).ok()
		})
		time.Sleep(time.Second)
		close(stop)
		wg.Wait()
		mu.Lock()
		t.Logf("node %d killed: %d calls ok, failures %v (slowest failure %s); calls succeeded again %s after the kill",
			i, ok, failed, slowest.Round(time.Millisecond), back.Round(10*time.Millisecond))
		if back > 15*time.Second {
			t.Errorf("node %d: calls through the connector failed for %s after the kill, want <= 15 s", i, back)
		}
		if slowest > 10*time.Second {
			t.Errorf("node %d: a failed call took %s: failures must be quick, not hang", i, slowest)
		}
		mu.Unlock()
		node.restart()
		time.Sleep(2 * time.Second) // the node catches up before the next one goes
	}
	if r := c.call("echo", `{"text":"end"}`); !r.ok() {
		t.Fatalf("after every node was lost once: %v", r)
	}
}
