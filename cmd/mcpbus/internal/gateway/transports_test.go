package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// TestMain lets this test binary act as `mcpbus demo-upstream --stdio`, so the
// stdio tests run mcpbus's own demo server without building the binary.
func TestMain(m *testing.M) {
	if os.Getenv("MCPBUS_GATEWAY_TEST_DEMO_STDIO") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		name := "stdio-demo" // --demo-name=x names another (a stdio canary's "version")
		for _, a := range os.Args[1:] {
			if n, ok := strings.CutPrefix(a, "--demo-name="); ok {
				name = n
			}
		}
		if err := demo.Run(ctx, []string{"--stdio", "--name", name}, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	registerSecret(master)
	os.Exit(runScan(m.Run()))
}

// A legacy HTTP+SSE upstream (go-sdk SSE handler) behind the gateway.
func TestSSEUpstream(t *testing.T) {
	var auth []string
	h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return demo.NewServer("sse-demo") }, nil)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	registerSecret("sse-token")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  legacy: {url: %q, transport: sse, auth_type: bearer_token, auth_value: sse-token}
`, master, up.URL), nil)
	cs, err := connect(t, g.URL()+"/mcp/legacy", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err != nil || fmt.Sprint(res.StructuredContent) != "map[sum:3]" {
		t.Fatalf("add over SSE: %v %+v", err, res)
	}
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 0.2, "steps": 2}}
	params.SetProgressToken("p")
	if res, err := cs.CallTool(context.Background(), params); err != nil || res.IsError {
		t.Fatalf("slow over SSE: %v", err)
	}
	for i, a := range auth {
		if a != "Bearer sse-token" {
			t.Fatalf("SSE request %d carried Authorization %q", i, a)
		}
	}
}

// A server configured without a transport (LiteLLM's examples leave it out)
// is detected, as the MCP spec's backwards compatibility describes: an
// HTTP+SSE server refuses the Streamable HTTP initialize and is then reached
// over SSE; a Streamable HTTP one is used as it is. The log says what was
// found, once.
func TestTransportDetectedWhenUnset(t *testing.T) {
	h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return demo.NewServer("sse-demo") }, nil)
	legacy := httptest.NewServer(h)
	t.Cleanup(legacy.Close)
	modern, _ := upstream(t, "modern")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  legacy: {url: %q}\n  modern: {url: %q}\n", master, legacy.URL, modern), nil)
	for _, server := range []string{"legacy", "modern"} {
		cs, err := connect(t, g.URL()+"/mcp/"+server, bearer(master))
		if err != nil {
			t.Fatalf("%s: %v", server, err)
		}
		for range 2 { // the second call finds the transport known
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}})
			if err != nil || fmt.Sprint(res.StructuredContent) != "map[sum:3]" {
				t.Fatalf("%s without a transport: %v %+v", server, err, res)
			}
		}
	}
	for server, transport := range map[string]string{"legacy": "sse", "modern": "http"} {
		n := 0
		for _, line := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(line, "upstream transport detected") && strings.Contains(line, "server="+server+" transport="+transport) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d detection log lines saying transport=%s, want one", server, n, transport)
		}
	}
}

// mcpbus's own demo server over stdio: killed mid-run, restarted, and the next
// call succeeds; the child sees only the configured environment.
func TestStdioUpstreamRestarts(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GATEWAY_ONLY_SECRET", "must-not-reach-the-child")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  local:
    transport: stdio
    command: %q
    env: {MCPBUS_GATEWAY_TEST_DEMO_STDIO: "1"}
    timeout: 30s # a bound on starting the child, which the race detector slows
`, master, exe), nil)
	cs, err := connect(t, g.URL()+"/mcp/local", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	echo := func() error {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		if err == nil && res.IsError {
			err = fmt.Errorf("tool error")
		}
		return err
	}
	if err := echo(); err != nil {
		t.Fatal(err)
	}
	child := stdioChild(t, os.Getpid())
	env, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(child), "environ"))
	if strings.Contains(string(env), "GATEWAY_ONLY_SECRET") || !strings.Contains(string(env), "MCPBUS_GATEWAY_TEST_DEMO_STDIO=1") {
		t.Errorf("the stdio child's environment is not exactly the configured one: %q", env)
	}
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The next calls succeed once the supervisor has restarted the process.
	bustest.Eventually(t, 30*time.Second, "a successful call after killing the stdio server", echo)
	if again := stdioChild(t, os.Getpid()); again == child {
		t.Fatalf("the same pid %d still serves", child)
	}
	if !strings.Contains(g.logs.String(), "stdio upstream exited; restarting") {
		t.Error("the restart was not logged")
	}
}

// stdioChild returns the pid of this process's child running the demo server.
func stdioChild(t *testing.T, parent int) int {
	t.Helper()
	var child int
	bustest.Eventually(t, 30*time.Second, "the stdio child process", func() error {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
		var children []string
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, p := range strings.Fields(string(b)) {
				pid, _ := strconv.Atoi(p)
				env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				if strings.Contains(string(env), "MCPBUS_GATEWAY_TEST_DEMO_STDIO=1") {
					child = pid
					return nil
				}
				children = append(children, p)
			}
		}
		return fmt.Errorf("children %v, none running the demo server", children)
	})
	return child
}
