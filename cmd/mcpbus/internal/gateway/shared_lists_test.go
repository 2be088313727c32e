package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Lists shared across a server's worker replicas while the upstream's ttlMs
// says they are fresh (toolworkers/shared_lists.go): two replicas of one
// server ask a 2026-07-28 upstream that gives ttlMs 60000 for its tool list
// once, however the queue group spreads the lists over them; a list_changed
// still reaches every caller at once, not after the ttlMs.
func TestListsSharedAcrossReplicasWhileFresh(t *testing.T) {
	var lists atomic.Int64
	srv := mcp.NewServer(&mcp.Implementation{Name: "fresh", Version: "1"}, &mcp.ServerOptions{
		SupportedProtocolVersions: []string{"2026-07-28"},
		SetCacheable: func(_ context.Context, req mcp.Request, c *mcp.Cacheable) {
			c.TTLMs, c.CacheScope = 60000, "public"
		},
	})
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				lists.Add(1)
			}
			return next(ctx, method, req)
		}
	})
	addTool := func(name string) {
		srv.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
	}
	addTool("first")
	url := serveMCP(t, srv, &mcp.StreamableHTTPOptions{Stateless: true})

	cfgYAML := fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  fresh: {url: %q}
`, master, url)
	g := startGateway(t, cfgYAML, nil)
	nc := roleConn(t, g.Gateway, bus.RoleWorkers)
	cfg, err := config.Parse("config.yaml", []byte(cfgYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstreamFor(nc)
	replica, err := toolworkers.Start(nc, cfg.Servers[0], toolworkers.Options{JetStream: js, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	nc.Flush()

	list := func() string {
		t.Helper()
		r := modernPost(t, g.URL()+"/mcp/fresh", "tools/list", "", "{}")
		if r.status != 200 {
			t.Fatalf("tools/list: HTTP %d %s", r.status, r.body)
		}
		var res struct {
			Result struct {
				Tools []struct{ Name string }
				TTLMs int64 `json:"ttlMs"`
			}
		}
		if err := json.Unmarshal(r.body, &res); err != nil {
			t.Fatal(err)
		}
		if res.Result.TTLMs <= 0 || res.Result.TTLMs > 60000 {
			t.Fatalf("tools/list answered ttlMs %d, want what is left of 60000", res.Result.TTLMs)
		}
		var names []string
		for _, tool := range res.Result.Tools {
			names = append(names, tool.Name)
		}
		return strings.Join(names, ",")
	}
	for range 16 { // two replicas in a queue group: both get some
		if got := list(); got != "first" {
			t.Fatalf("tools/list: %s", got)
		}
	}
	if n := lists.Load(); n != 1 {
		t.Fatalf("16 lists over two replicas asked the upstream %d times within its ttlMs, want once", n)
	}
	// A change: whichever replica hears it drops the shared copy before
	// anyone is told, so the next list has it long before the ttlMs ends.
	addTool("second")
	bustest.Eventually(t, 30*time.Second, "the changed list is answered", func() error {
		return bustest.Want("tools", list(), "first,second")
	})
}
