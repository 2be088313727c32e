package compose

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// The compose deployment, started on 127.0.0.1 without docker: the NATS nodes
// in-process from their own config files and the bus users block the
// nats-users one-shot writes, then every mcpbus container of compose.yaml as
// a process of the real binary with its command, its environment and its
// files, in depends_on order, each waited for with its own health check.
// Only addresses change: every port is a free loopback one. A client then
// lists the demo upstream's tools through each ingress replica and calls one
// through the other replica on the same session.
func TestComposeOnLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole deployment (-short)")
	}
	p := loadProject(t)
	vols := volumes{}
	runUsersInit(t, p, vols)
	natsURLs := startCluster(t, p, vols)

	// A single container's listen address ("demo:3001") -> its address
	// here, chosen before anything starts: config.yaml names it.
	local := map[string]string{}
	todo := map[string]types.ServiceConfig{}
	for _, s := range mcpbusServices(p) {
		todo[s.Name] = s
		if l := parseCommand(t, s.Name, s.Command).flags["listen"]; l != "" && replicas(s) == 1 {
			_, port, _ := net.SplitHostPort(l)
			local[s.Name+":"+port] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		}
	}
	var ingresses []string
	var private string
	for len(todo) > 0 {
		var next []string
		for name, s := range todo {
			if dependsOnly(s, todo) {
				next = append(next, name)
			}
		}
		if len(next) == 0 {
			t.Fatalf("depends_on has a cycle among %v", todo)
		}
		slices.Sort(next)
		for _, name := range next {
			s := todo[name]
			delete(todo, name)
			for r := range replicas(s) {
				addr := startService(t, s, r, natsURLs, local)
				switch name {
				case "ingress":
					ingresses = append(ingresses, "http://"+addr)
				case "ingress-private":
					private = "http://" + addr
				}
			}
		}
	}
	if len(ingresses) != 2 {
		t.Fatalf("%d ingress replicas started, want 2", len(ingresses))
	}

	master := env(mustService(t, p, "ingress"))["MCPBUS_MASTER_KEY"]
	var session string
	for i, ing := range ingresses {
		c := &mcpClient{url: ing + "/mcp", key: master}
		if r := c.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"compose-smoke","version":"1"}}}`); r.err != nil {
			t.Fatalf("initialize through ingress %d: %v", i, r.err)
		}
		r := c.post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		if r.err != nil {
			t.Fatalf("tools/list through ingress %d: %v", i, r.err)
		}
		var list struct{ Tools []struct{ Name string } }
		_ = json.Unmarshal(r.result, &list)
		var names []string
		for _, tl := range list.Tools {
			names = append(names, tl.Name)
		}
		for _, want := range []string{"demo__echo", "demo__add", "demo__slow"} {
			if !slices.Contains(names, want) {
				t.Errorf("tools/list through ingress %d: %v, want the demo upstream's %s", i, names, want)
			}
		}
		session = c.session
	}
	// The session the second replica opened, used on the first: sessions
	// live in JetStream, and the call crosses router, a worker (which
	// injects the demo's key) and the upstream.
	c := &mcpClient{url: ingresses[0] + "/mcp", key: master, session: session}
	r := c.post(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__add","arguments":{"a":2,"b":3}}}`)
	if r.err != nil || !strings.Contains(string(r.result), `"text":"5"`) {
		t.Fatalf("tools/call demo__add through the other replica: %s %v", r.result, r.err)
	}

	// The two gateways: keys are made on the private ingress; the public
	// edge serves no admin route, and the key works on its /mcp.
	if code, body := post(t, ingresses[0]+"/key/generate", master, `{"key_alias":"compose"}`); code != http.StatusNotFound ||
		!strings.Contains(body, "does not serve the admin routes") {
		t.Fatalf("/key/generate on the public edge: HTTP %d %s; want 404", code, body)
	}
	code, body := post(t, private+"/key/generate", master, `{"key_alias":"compose","mcp_servers":["demo"]}`)
	var gen struct{ Key string }
	if _ = json.Unmarshal([]byte(body), &gen); code != http.StatusOK || gen.Key == "" {
		t.Fatalf("/key/generate on the private ingress: HTTP %d %s", code, body)
	}
	kc := &mcpClient{url: ingresses[1] + "/mcp", key: gen.Key}
	if r := kc.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"compose-smoke","version":"1"}}}`); r.err != nil {
		t.Fatalf("initialize with the new key on the edge: %v", r.err)
	}
	if r := kc.post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"edge"}}}`); r.err != nil ||
		!strings.Contains(string(r.result), `"text":"edge"`) {
		t.Fatalf("tools/call with the new key on the edge: %s %v", r.result, r.err)
	}
}

// post sends a JSON body with a bearer key and returns the status and body.
func post(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dependsOnly: none of s's dependencies is still to start.
func dependsOnly(s types.ServiceConfig, todo map[string]types.ServiceConfig) bool {
	for d := range s.DependsOn {
		if _, waiting := todo[d]; waiting {
			return false
		}
	}
	return true
}

// startCluster starts the NATS nodes in-process from their config files,
// on loopback ports, and returns the client URLs.
func startCluster(t *testing.T, p *types.Project, vols volumes) string {
	t.Helper()
	nodes := natsNodes(p)
	routes := map[string]int{}
	for _, n := range nodes {
		routes[n.Name] = freePort(t)
	}
	var urls []string
	var servers []*server.Server
	for _, n := range nodes {
		o := nodeOptions(t, n, vols)
		o.Host, o.Port = "127.0.0.1", freePort(t)
		o.HTTPHost, o.HTTPPort = "127.0.0.1", freePort(t)
		o.Cluster.Host, o.Cluster.Port = "127.0.0.1", routes[n.Name]
		for _, r := range o.Routes {
			r.Host = fmt.Sprintf("127.0.0.1:%d", routes[r.Hostname()])
		}
		o.StoreDir = t.TempDir()
		o.NoSigs = true
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("NATS node %s: %v", n.Name, err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		servers = append(servers, s)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", o.Port))
	}
	for i, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("NATS node %s did not start", nodes[i].Name)
		}
		// The nodes' health check: JetStream current in the cluster.
		health := fmt.Sprintf("http://127.0.0.1:%d/healthz", s.MonitorAddr().Port)
		waitFor(t, 60*time.Second, nodes[i].Name+" healthy", func() bool { return get(health) == http.StatusOK })
	}
	return strings.Join(urls, ",")
}

// startService starts replica r of s as compose would, with its listen
// addresses on loopback (local's, else free ports), and waits until its
// health check passes. It returns the address of its --listen, if any.
func startService(t *testing.T, s types.ServiceConfig, r int, natsURLs string, local map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", s.Name, r+1)
	root := rootfs(t, s, volumes{})
	args := inRoot(root, s, s.Command)
	ports := map[string]string{} // container port -> local address
	listen := ""
	for i := 1; i < len(args); i++ {
		switch args[i-1] {
		case "--nats":
			args[i] = natsURLs
		case "--listen", "--admin-listen":
			_, port, _ := net.SplitHostPort(args[i])
			if addr, ok := local[s.Name+":"+port]; ok {
				args[i] = addr
			} else {
				args[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
			}
			ports[port] = args[i]
			if args[i-1] == "--listen" {
				listen = args[i]
			}
		}
	}
	// The config file names other containers (the demo upstream): here they
	// are on loopback.
	if cfg := slices.Index(args, "--config"); cfg >= 0 {
		data, err := os.ReadFile(args[cfg+1])
		if err != nil {
			t.Fatal(err)
		}
		for container, addr := range local {
			data = bytes.ReplaceAll(data, []byte("://"+container+"/"), []byte("://"+addr+"/"))
		}
		if err := os.WriteFile(args[cfg+1], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	var (
		pid    int
		exited chan struct{}
	)
	run := func() {
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binary(t), args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = environ(s), logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		pid, exited = cmd.Process.Pid, done
	}
	run()
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- %s log:\n%s", name, tail(string(out), 3000))
		}
	})
	restarts := 0
	healthy := func() bool {
		select {
		case <-exited:
			// What docker does with a container that exits (restart:
			// unless-stopped): start it again. A loaded machine can time
			// out a first connection to NATS; a broken service exits
			// every time, and fails the wait.
			out, _ := os.ReadFile(logPath)
			if s.Restart != types.RestartPolicyUnlessStopped || restarts == 5 {
				t.Fatalf("%s exited (restart: %q, %d restarts): %s", name, s.Restart, restarts, tail(string(out), 2000))
			}
			restarts++
			t.Logf("%s exited; restarting it as docker would (restart: %s): %s", name, s.Restart, tail(string(out), 300))
			time.Sleep(time.Second)
			run()
			return false
		default:
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable { // service_started: it accepts connections
			c, err := net.Dial("tcp", listen)
			if err == nil {
				c.Close()
			}
			return err == nil
		}
		probe := slices.Clone(s.HealthCheck.Test[2:])
		for i, a := range probe {
			if u, err := url.Parse(a); err == nil && u.Scheme == "http" && ports[u.Port()] != "" {
				u.Host = ports[u.Port()]
				probe[i] = u.String()
			}
		}
		return exec.Command(binary(t), probe...).Run() == nil
	}
	waitFor(t, 60*time.Second, name+" healthy", healthy)
	return listen
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
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

func get(u string) int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mcpClient is a minimal MCP client over Streamable HTTP.
type mcpClient struct{ url, key, session string }

type rpcResult struct {
	result json.RawMessage
	err    error
}

func (c *mcpClient) post(body string) rpcResult {
	req, _ := http.NewRequest(http.MethodPost, c.url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	hc := http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return rpcResult{err: err}
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		c.session = id
	}
	raw, _ := io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if d, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: ")); ok {
				raw = append([]byte(nil), d...)
			}
		}
	}
	var m struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &m) != nil || m.Error != nil {
		return rpcResult{err: fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, raw)}
	}
	return rpcResult{result: m.Result}
}
