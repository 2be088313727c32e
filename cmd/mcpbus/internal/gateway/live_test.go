package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serversKV opens the registry bucket on nc.
func serversKV(t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), bus.BucketServers)
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

func putServer(t *testing.T, kv jetstream.KeyValue, s bus.ServerSpec) {
	t.Helper()
	data, _ := json.Marshal(s)
	if _, err := kv.Put(context.Background(), s.Name, data); err != nil {
		t.Fatal(err)
	}
}

const echoCall = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"live"}}}`

// callable initializes a session on /mcp/{server} and calls echo until both
// succeed, and returns the session headers. It fails only if that never
// happens (a 30 s bound: a registry change reaches the services by KV watch,
// which takes milliseconds, but no test asserts how many).
func callable(t *testing.T, g *testGateway, server string) http.Header {
	t.Helper()
	url := g.URL() + "/mcp/" + server
	var h http.Header
	bustest.Eventually(t, 30*time.Second, server+" callable", func() error {
		r := post(t, url, bearer(master), initBody)
		if r.status != http.StatusOK || r.header.Get("Mcp-Session-Id") == "" {
			return fmt.Errorf("initialize: HTTP %d %s", r.status, r.body)
		}
		h = bearer(master)
		h.Set("Mcp-Session-Id", r.header.Get("Mcp-Session-Id"))
		h.Set("Mcp-Protocol-Version", "2025-06-18")
		if r = post(t, url, h, echoCall); r.status != http.StatusOK || r.rpcErr.Message != "" || !strings.Contains(string(r.result), "live") {
			return fmt.Errorf("echo: HTTP %d %s", r.status, r.body)
		}
		return nil
	})
	return h
}

// A server written to the registry bucket becomes callable through the
// all-in-one gateway, with no restart; deleted, it stops taking calls.
func TestLiveServerAddedAndRemoved(t *testing.T) {
	url, rec := upstream(t, "fresh")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {}\n", master), nil)
	_, kv := serversKV(t, testConn(t, g.Gateway))

	putServer(t, kv, bus.ServerSpec{Name: "fresh", URL: url, Source: "api"})
	h := callable(t, g, "fresh")
	if len(rec.seen()) == 0 {
		t.Fatal("the call did not reach the new upstream")
	}
	if !slices.Contains(g.workers.Hosted(), "fresh") {
		t.Fatalf("gateway hosts %v", g.workers.Hosted())
	}

	if err := kv.Delete(context.Background(), "fresh"); err != nil {
		t.Fatal(err)
	}
	waitCallFails(t, g.URL()+"/mcp/fresh", h, "fresh")
}

// waitCallFails waits until a call on the session fails with an error that
// names the server as unknown or without a worker (failing after 30 s).
func waitCallFails(t *testing.T, url string, h http.Header, server string) {
	t.Helper()
	bustest.Eventually(t, 30*time.Second, "a call to the deleted server "+server+" fails", func() error {
		r := post(t, url, h, echoCall)
		msg := r.rpcErr.Message
		if strings.Contains(msg, fmt.Sprintf("unknown MCP server %q", server)) ||
			strings.Contains(msg, fmt.Sprintf("no tool worker is running for server %q", server)) {
			return nil
		}
		return fmt.Errorf("HTTP %d %s", r.status, r.body)
	})
}

// Two processes share one NATS: the gateway (hosting only its config server)
// and a worker host joined on the gateway's loopback NATS listener, as
// `mcpbus worker --servers remote` would. A record written to the registry is
// served through the gateway by the other host; deleting it ends the calls; a
// changed config server URL is picked up by the gateway's own worker.
func TestLiveRegistryAcrossProcesses(t *testing.T) {
	cfgURL1, cfgRec1 := upstream(t, "cfg-one")
	cfgURL2, cfgRec2 := upstream(t, "cfg-two")
	remoteURL, remoteRec := upstream(t, "remote")
	g := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {cfg: {url: %q}}\n", master, cfgURL1), nil,
		func(o *Options) {
			o.NATSListen = "127.0.0.1:0"
			o.WorkerServers = []string{"cfg"}
		})
	if g.NATSURL() == "" {
		t.Fatal("the gateway's NATS has no loopback listener")
	}

	// The worker host: its own connection over TCP, its own manager.
	wu := testRoleUsers[bus.RoleWorkers]
	wnc, err := natsnode.Connect(g.NATSURL(), natsnode.ConnectOptions{Name: "test-worker-host", User: wu.User, Password: wu.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	wjs, err := jetstream.New(wnc)
	if err != nil {
		t.Fatal(err)
	}
	cacheCtx, stopCache := context.WithCancel(context.Background())
	t.Cleanup(stopCache)
	wlogs := &syncBuffer{}
	recordLogs(wlogs)
	wlog := slog.New(slog.NewTextHandler(wlogs, nil))
	cache, err := servercache.Follow(cacheCtx, wnc, wlog)
	if err != nil {
		t.Fatal(err)
	}
	host, err := toolworkers.StartManager(context.Background(), wnc, toolworkers.ManagerOptions{
		Worker: toolworkers.Options{Log: wlog, Servers: cache, JetStream: wjs},
		Only:   []string{"remote"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Stop)
	if got := host.Hosted(); len(got) != 0 {
		t.Fatalf("the worker host runs %v before any record of its servers", got)
	}

	// The registry write (what the registry API does): its own connection.
	anc, err := natsnode.Connect(g.NATSURL(), natsnode.ConnectOptions{Name: "test-registry-writer", User: testBusUser.User, Password: testBusUser.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	_, kv := serversKV(t, anc)

	putServer(t, kv, bus.ServerSpec{Name: "remote", URL: remoteURL, Source: "api"})
	h := callable(t, g, "remote")
	if len(remoteRec.seen()) == 0 {
		t.Fatal("the call did not reach the remote upstream")
	}
	if slices.Contains(g.workers.Hosted(), "remote") || !slices.Equal(host.Hosted(), []string{"remote"}) {
		t.Fatalf("gateway hosts %v, worker host %v: remote must run on the worker host only", g.workers.Hosted(), host.Hosted())
	}

	if err := kv.Delete(context.Background(), "remote"); err != nil {
		t.Fatal(err)
	}
	waitCallFails(t, g.URL()+"/mcp/remote", h, "remote")
	// The router and the worker host follow the bucket independently.
	bustest.Eventually(t, 30*time.Second, "the worker host stops the deleted server", func() error {
		if got := host.Hosted(); len(got) != 0 {
			return fmt.Errorf("it runs %v", got)
		}
		return nil
	})
	if _, err := anc.Request(bus.ToolRPC("remote"), []byte(echoCall), 10*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("the deleted server's worker still answers on the bus: %v", err)
	}

	// The config server, hosted by the gateway: change its URL in KV.
	ch := callable(t, g, "cfg")
	if len(cfgRec1.seen()) == 0 {
		t.Fatal("cfg did not reach its first upstream")
	}
	putServer(t, kv, bus.ServerSpec{Name: "cfg", URL: cfgURL2, Source: "config"})
	bustest.Eventually(t, 30*time.Second, "after the URL change, calls reach the new upstream", func() error {
		if len(cfgRec2.seen()) != 0 {
			return nil
		}
		r := post(t, g.URL()+"/mcp/cfg", ch, echoCall)
		if r.status != http.StatusOK || r.rpcErr.Message != "" {
			t.Fatalf("cfg during the update: HTTP %d %s", r.status, r.body)
		}
		return fmt.Errorf("%d calls at the old upstream, none at the new", len(cfgRec1.seen()))
	})
	// The old worker leaves the bus, then closes its session in the
	// background (a DELETE to the old upstream); after that nothing more
	// reaches it.
	bustest.Eventually(t, 30*time.Second, "the old worker closes its upstream session", func() error {
		return bustest.AtLeast("DELETEs at the old upstream", cfgRec1.deleteCount(), 1)
	})
	before := len(cfgRec1.seen())
	for i := 0; i < 3; i++ {
		if r := post(t, g.URL()+"/mcp/cfg", ch, echoCall); r.status != http.StatusOK || !strings.Contains(string(r.result), "live") {
			t.Fatalf("cfg after the update: HTTP %d %s", r.status, r.body)
		}
	}
	if after := len(cfgRec1.seen()); after != before {
		t.Fatalf("%d requests reached the old upstream after the update", after-before)
	}
	if slices.Contains(host.Hosted(), "cfg") {
		t.Fatal("the worker host picked up a server outside its subset")
	}
}
