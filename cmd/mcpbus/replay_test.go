package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/gateway"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// seenCalls is a demo upstream that keeps the Authorization header and body
// of every tools/call it gets.
type seenCalls struct {
	mu    sync.Mutex
	calls []string // "<Authorization> <body>"
}

func (s *seenCalls) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		r.Body.Close()
		if strings.Contains(b.String(), `"tools/call"`) {
			s.mu.Lock()
			s.calls = append(s.calls, r.Header.Get("Authorization")+" "+b.String())
			s.mu.Unlock()
		}
		r.Body = httpBody(b.Bytes())
		next.ServeHTTP(w, r)
	})
}

func (s *seenCalls) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func httpBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// createKey makes a virtual key through the admin API.
func createKey(t *testing.T, base, master string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/key/generate", strings.NewReader(`{"key_alias":"replay-caller"}`))
	req.Header.Set("Authorization", "Bearer "+master)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct{ Key string }
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.Key == "" {
		t.Fatalf("/key/generate: HTTP %d %v", res.StatusCode, err)
	}
	return out.Key
}

// `mcpbus replay` re-runs a recorded call (arguments recorded in full) on
// another upstream through a real gateway: that server's own configured
// credential goes upstream, never the original caller's key.
func TestReplay(t *testing.T) {
	const master, bSecret = "sk-replay-master-0123456789", "b-upstream-secret-0123456789"
	var seenA, seenB seenCalls
	a := httptest.NewServer(seenA.wrap(demo.Handler("a")))
	defer a.Close()
	b := httptest.NewServer(seenB.wrap(demo.Handler("b")))
	defer b.Close()
	cfg, err := config.Parse("c.yaml", []byte(fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_audit: {enabled: true, arguments: full}
mcp_servers:
  a: {url: %q}
  b: {url: %q, auth_type: bearer_token, auth_value: %s}
`, master, a.URL+"/mcp", b.URL+"/mcp", bSecret)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	auditor := bus.BusUser{User: "auditor", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleAudit}}
	g, err := gateway.Start(context.Background(), gateway.Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: t.TempDir(),
		NATSListen: "127.0.0.1:0", BusUsers: []bus.BusUser{auditor}, Env: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Close(ctx)
	}()
	// The original call, by a caller with a key of its own.
	callerKey := createKey(t, g.URL(), master)
	c := mcp.NewClient(&mcp.Implementation{Name: "caller", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: g.URL() + "/mcp/a",
		HTTPClient: &http.Client{Transport: fixedHeader{http.Header{"Authorization": {"Bearer " + callerKey}}}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "replay me"}}); err != nil {
		t.Fatal(err)
	}
	cs.Close()
	// Its record, as the auditor reads it.
	t.Setenv("MCPBUS_NATS_USER", auditor.User)
	t.Setenv("MCPBUS_NATS_PASSWORD", auditor.Password)
	nc, err := natsnode.Connect(g.NATSURL(), natsnode.ConnectOptions{Name: "t", User: auditor.User, Password: auditor.Password})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var id string
	bustest.Eventually(t, 10*time.Second, "the call's audit record", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := bus.ReadAudit(ctx, nc, bus.AuditFilter("a", ""), bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			var rec bus.AuditRecord
			if json.Unmarshal(m.Data, &rec) == nil && rec.Tool == "echo" {
				id = rec.RequestID
			}
			return nil
		})
		if err == nil && id == "" {
			err = fmt.Errorf("no record yet")
		}
		return err
	})

	t.Setenv("MCPBUS_MASTER_KEY", master)
	code, stdout, stderr := runCLI("replay", id, "--upstream", "b", "--url", g.URL(), "--nats", g.NATSURL())
	if code != 0 || !strings.Contains(stdout, "replay me") || !strings.Contains(stderr, "replayed "+id+" a/echo on b: recorded ok, now ok") {
		t.Fatalf("replay: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	calls := seenB.all()
	if len(calls) != 1 || !strings.HasPrefix(calls[0], "Bearer "+bSecret+" ") || !strings.Contains(calls[0], `"arguments":{"text":"replay me"}`) {
		t.Fatalf("upstream b got %q", calls)
	}
	for _, c := range append(calls, seenA.all()...) {
		if strings.Contains(c, callerKey) || strings.Contains(c, master) {
			t.Errorf("a gateway key went upstream: %s", c)
		}
	}
	// What cannot be replayed says why.
	for args, msg := range map[string]string{
		"no-such-request --upstream b": "no audit record of request no-such-request",
		id + " --upstream b.c":         `--upstream "b.c": want a server name or an http(s) URL`,
		id:                             "want a request id and --upstream",
	} {
		code, _, stderr := runCLI(append(append([]string{"replay"}, strings.Fields(args)...), "--url", g.URL(), "--nats", g.NATSURL())...)
		if code == 0 || !strings.Contains(stderr, msg) {
			t.Errorf("replay %s: exit %d %q, want %q", args, code, stderr, msg)
		}
	}
}

// A call recorded with its arguments' hash only, or too large to keep,
// cannot be replayed, and replay says why before calling anything.
func TestReplayNeedsFullArguments(t *testing.T) {
	url, publish := auditServer(t)
	hashed := rec("r-hash", "github", "search", bus.AuditOK, "bot", time.Now())
	big := rec("r-big", "github", "search", bus.AuditOK, "bot", time.Now())
	big.ArgumentsTruncated = true
	list := rec("r-list", "github", "", bus.AuditOK, "bot", time.Now())
	list.Method = "tools/list"
	publish(hashed, big, list)
	t.Setenv("MCPBUS_MASTER_KEY", "unused-master-key-0123456789")
	for id, msg := range map[string]string{
		"r-hash": "its arguments were recorded as a hash only",
		"r-big":  "its arguments were over the 16 KiB a record keeps",
		"r-list": "request r-list is a tools/list, not a tools/call",
	} {
		code, _, stderr := runCLI("replay", id, "--upstream", "github", "--url", "http://127.0.0.1:1", "--nats", url)
		if code == 0 || !strings.Contains(stderr, msg) {
			t.Errorf("replay %s: exit %d %q, want %q", id, code, stderr, msg)
		}
	}
}
