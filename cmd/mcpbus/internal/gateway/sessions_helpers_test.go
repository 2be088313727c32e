package gateway

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go/jetstream"
)

// replicaIngress runs one more ingress process on g's NATS server, as
// `mcpbus ingress --nats ...` would: its own connection, the sessions bucket
// through JetStream, the registry cache, and its own 127.0.0.1 listener.
func replicaIngress(t *testing.T, g *testGateway) string {
	t.Helper()
	u, _ := stoppableIngress(t, g)
	return u
}

// stoppableIngress runs one more ingress on g's NATS server, as `mcpbus
// ingress --nats ...` would, and returns its URL and how to stop it (its
// listener, its open requests and its bus connection all end).
func stoppableIngress(t *testing.T, g *testGateway) (string, func()) {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleIngress)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	servers, err := servercache.Follow(ctx, nc, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ing := ingress.New(ingress.Options{NC: nc, Log: slog.New(slog.NewTextHandler(g.logs, nil)), InternalRanges: config.DefaultInternalIPRanges(),
		Servers: servers, JetStream: js, ListenAddr: ln.Addr().String()})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ing.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = srv.Close()
		ing.Close()
		cancel()
		nc.Close()
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// connectLegacy opens a go-sdk client session over the legacy HTTP+SSE
// transport.
func connectLegacy(t *testing.T, endpoint string, header http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "legacy-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: headerTransport{header}}}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// doRaw sends req (for the cases that set Host themselves) and reads the
// JSON-RPC answer.
func doRaw(t *testing.T, req *http.Request) rawResponse {
	t.Helper()
	out, _ := exchange(t, req)
	return out
}
