// Package fault is the fault suite: a real 3-node NATS cluster (the mcpbus
// binary's embedded nats-server, one child process per node, clustered over
// loopback), every mcpbus service as a process of the real binary, an MCP
// upstream in the test process, load from an HTTP MCP client, and SIGKILL /
// SIGSTOP of one process at a time. It needs the binary: MCPBUS_BIN (make
// fault, make test).
package fault

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
)

const (
	master  = "sk-fault-master-0123456789abcdef"
	busUser = "svc"
	busPass = "svc-password-0123456789abcdef"
	// The connector of the server edge (connector_test.go).
	connUser   = "edge-conn"
	connPass   = "edge-password-0123456789abcdef"
	readyLimit = 60 * time.Second
)

func binary(t *testing.T) string {
	t.Helper()
	b := os.Getenv("MCPBUS_BIN")
	if b == "" {
		t.Skip("the fault suite runs the mcpbus binary: set MCPBUS_BIN (make fault, make test)")
	}
	return b
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one child process of the binary.
type proc struct {
	t    *testing.T
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string
	mu   sync.Mutex
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, log: filepath.Join(t.TempDir(), name+".log")}
	p.run()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- %s log (last 3000 bytes):\n%s", p.name, tail(p.logs(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (p *proc) run() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(binary(p.t), p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "MCPBUS_NATS_USER="+busUser, "MCPBUS_NATS_PASSWORD="+busPass)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
}

// stop ends the process as an operator would (SIGTERM: it drains, and a
// worker flushes its usage events), SIGKILL after 20 s.
func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// signal sends sig to the process by its PID.
func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(p.cmd.Process.Pid, sig)
	}
}

func (p *proc) kill() {
	p.signal(syscall.SIGCONT)
	p.signal(syscall.SIGKILL)
}

// restart starts the process again with the same arguments, once the killed
// one has exited (its ports and data directory are free).
func (p *proc) restart() {
	p.kill()
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	<-done
	p.run()
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func ready(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/health/readiness")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// deployment is a cluster and the services on it.
type deployment struct {
	t        *testing.T
	cfg      string
	nodes    []*proc
	natsURLs string
	// leafURLs are the nodes' leaf listeners, for connectors.
	leafURLs    string
	upstream    *recorder
	upstreamURL string
}

// newDeployment starts 3 NATS nodes and writes the config every process reads.
func newDeployment(t *testing.T, replicas int) *deployment {
	t.Helper()
	binary(t)
	rec := &recorder{next: demo.Handler("demo")}
	up := httptest.NewServer(rec)
	t.Cleanup(up.Close)
	d := &deployment{t: t, upstream: rec, upstreamURL: up.URL + "/mcp", cfg: filepath.Join(t.TempDir(), "config.yaml")}
	cfg := fmt.Sprintf(`general_settings:
  master_key: %s
  nats_replicas: %d
  mcp_bus_users:
    - {user: %s, password: %s, roles: [auth, registry, router, ingress, workers, usage]}
    - {user: %s, password: %s, roles: [connector], servers: [edge]}
mcp_servers:
  demo: {url: %q, timeout: 60s}
  spare: {url: %q}
  edge: {transport: connector}
  jobs: {url: %q, tasks: [slow]}
`, master, replicas, busUser, busPass, connUser, connPass, up.URL+"/mcp", up.URL+"/mcp", up.URL+"/mcp")
	if err := os.WriteFile(d.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ports are picked free, then bound by the nodes; another process on a
	// busy machine can take one in between: then the nodes are started
	// again on new ports.
	for attempt := 1; ; attempt++ {
		if d.startNodes() {
			break
		}
		if attempt == 3 {
			t.Fatal("the NATS nodes did not come up in 3 attempts")
		}
		for _, n := range d.nodes {
			n.kill()
		}
		d.nodes = nil
	}
	return d
}

// startNodes starts the 3 nodes on fresh ports and reports whether all came up.
func (d *deployment) startNodes() bool {
	t := d.t
	client, route, leaf := make([]int, 3), make([]int, 3), make([]int, 3)
	for i := range 3 {
		client[i], route[i], leaf[i] = freePort(t), freePort(t), freePort(t)
	}
	var urls, leafURLs []string
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", route[j]))
			}
		}
		d.nodes = append(d.nodes, start(t, fmt.Sprintf("nats-%d", i), "nats", "--config", d.cfg, "--data", t.TempDir(),
			"--nats-listen", fmt.Sprintf("127.0.0.1:%d", client[i]), "--nats-name", fmt.Sprintf("node-%d", i),
			"--nats-cluster", fmt.Sprintf("127.0.0.1:%d", route[i]), "--nats-routes", strings.Join(routes, ","),
			"--nats-leafnodes", fmt.Sprintf("127.0.0.1:%d", leaf[i])))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
		leafURLs = append(leafURLs, fmt.Sprintf("nats-leaf://127.0.0.1:%d", leaf[i]))
	}
	d.natsURLs, d.leafURLs = strings.Join(urls, ","), strings.Join(leafURLs, ",")
	deadline := time.Now().Add(readyLimit)
	for _, n := range d.nodes {
		for !strings.Contains(n.logs(), "mcpbus services nats running") {
			if time.Now().After(deadline) || strings.Contains(n.logs(), "mcpbus:") { // an error line: it exited
				t.Logf("%s did not come up: %s", n.name, tail(n.logs(), 500))
				return false
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return true
}

// service starts `mcpbus serve --services s` on the cluster; it returns the
// process, its HTTP URL (ingress only, else "") and its admin URL.
func (d *deployment) service(name, services string) (*proc, string, string) {
	d.t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(d.t))
	args := []string{"serve", "--config", d.cfg, "--services", services, "--nats", d.natsURLs, "--admin-listen", admin, "--drain-timeout", "2s"}
	url := ""
	if strings.Contains(services, "ingress") {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(d.t))
		args = append(args, "--listen", listen)
		url = "http://" + listen
	}
	p := start(d.t, name, args...)
	waitFor(d.t, readyLimit, name+" ready", func() bool { return ready("http://" + admin) })
	return p, url, "http://" + admin
}

// worker starts `mcpbus worker` for the demo server.
func (d *deployment) worker(name string) (*proc, string) {
	d.t.Helper()
	return d.workerFor(name, "demo")
}

// workerFor starts `mcpbus worker --servers server`.
func (d *deployment) workerFor(name, server string) (*proc, string) {
	d.t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(d.t))
	p := start(d.t, name, "worker", "--nats", d.natsURLs, "--servers", server, "--admin-listen", admin, "--drain-timeout", "1s")
	waitFor(d.t, readyLimit, name+" ready", func() bool {
		return ready("http://"+admin) && strings.Contains(p.logs(), "hosting="+server)
	})
	return p, "http://" + admin
}

// recorder counts the upstream's tools/call requests.
type recorder struct {
	mu    sync.Mutex
	calls int
	next  http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, []byte(`"tools/call"`)) {
		r.mu.Lock()
		r.calls++
		r.mu.Unlock()
	}
	r.next.ServeHTTP(w, req)
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return r.calls }

// client is a minimal MCP client over HTTP (JSON answers only).
type client struct {
	url     string
	session string
	key     string // "" for the master key
	hc      http.Client
}

type rpcResult struct {
	status int
	code   int
	msg    string
	result json.RawMessage
	err    error
}

func (r rpcResult) ok() bool { return r.err == nil && r.status == 200 && r.code == 0 }

func (r rpcResult) String() string {
	if r.err != nil {
		return "transport: " + r.err.Error()
	}
	return fmt.Sprintf("HTTP %d code %d %q", r.status, r.code, r.msg)
}

func (c *client) post(body string) rpcResult {
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	key := c.key
	if key == "" {
		key = master
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return rpcResult{err: err}
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		c.session = id
	}
	raw, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		raw = lastEvent(raw)
	}
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	r := rpcResult{status: resp.StatusCode}
	if json.Unmarshal(raw, &m) != nil {
		r.err = fmt.Errorf("unreadable answer: %.200s", raw)
		return r
	}
	r.result = m.Result
	if m.Error != nil {
		r.code, r.msg = m.Error.Code, m.Error.Message
	}
	return r
}

// lastEvent is the data of an SSE answer's last event (the response).
func lastEvent(raw []byte) []byte {
	var last []byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
			last = append([]byte(nil), d...)
		}
	}
	return last
}

func (c *client) initialize() rpcResult {
	return c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fault","version":"1"}}}`)
}

func (c *client) call(tool, args string) rpcResult {
	return c.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, tool, args))
}

func newClient(t *testing.T, url string) *client {
	t.Helper()
	c := &client{url: url + "/mcp/demo", hc: http.Client{Timeout: 15 * time.Second}}
	var r rpcResult
	waitFor(t, readyLimit, "a session", func() bool { r = c.initialize(); return r.ok() })
	return c
}
