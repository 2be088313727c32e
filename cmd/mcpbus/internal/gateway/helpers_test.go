package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer collects log output from concurrent services.
// syncBuffer collects log output from concurrent services.
type syncBuffer = bustest.Buffer

// testGateway is a running gateway plus everything it logged.
type testGateway struct {
	*Gateway
	logs *syncBuffer
}

// startGateway runs the whole gateway in-process on a real embedded NATS server
// (no TCP listener), serving HTTP on a loopback port.
func startGateway(t *testing.T, yaml string, env map[string]string) *testGateway {
	t.Helper()
	return startGatewayOpts(t, yaml, env, nil)
}

// startGatewayOpts is startGateway with the Options adjusted by mod (for a
// loopback NATS listener, a worker subset, RouterOnly, ...).
func startGatewayOpts(t *testing.T, yaml string, env map[string]string, mod func(*Options)) *testGateway {
	t.Helper()
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := config.Parse("config.yaml", []byte(yaml), lookup)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	recordLogs(logs)
	for _, v := range env {
		registerSecret(v)
	}
	o := Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "off", Env: lookup,
		Log:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BusUsers: testBusUsers()}
	if mod != nil {
		mod(&o)
	}
	g, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Close(ctx)
	})
	return &testGateway{Gateway: g, logs: logs}
}

// recorder wraps an upstream handler and keeps the headers of every request.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	inits   int
	calls   int // tools/call requests
	deletes int // DELETEs (a session ended)
	next    http.Handler
	// forget, when set, makes the upstream answer 404 to the next request that
	// carries a session id, as a server that restarted would.
	forget bool
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc.mu.Lock()
	rc.headers = append(rc.headers, r.Header.Clone())
	if bytes.Contains(body, []byte(`"method":"initialize"`)) {
		rc.inits++
	}
	if bytes.Contains(body, []byte(`"method":"tools/call"`)) {
		rc.calls++
	}
	if r.Method == http.MethodDelete {
		rc.deletes++
	}
	forget := rc.forget && r.Header.Get("Mcp-Session-Id") != ""
	if forget {
		rc.forget = false
	}
	rc.mu.Unlock()
	if forget {
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	rc.next.ServeHTTP(w, r)
}

func (rc *recorder) seen() []http.Header {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]http.Header(nil), rc.headers...)
}

func (rc *recorder) initCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inits
}

func (rc *recorder) callCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.calls
}

func (rc *recorder) deleteCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.deletes
}

// upstream starts the demo go-sdk MCP server on 127.0.0.1 behind a recorder.
func upstream(t *testing.T, name string) (string, *recorder) {
	t.Helper()
	rc := &recorder{next: demo.Handler(name)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", rc
}

// headerTransport adds fixed headers to every request of a downstream client.
type headerTransport struct{ h http.Header }

func (ht headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range ht.h {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens a real go-sdk client session through the gateway.
func connect(t *testing.T, endpoint string, header http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	return connectWith(t, endpoint, header, nil)
}

// connectPlain is connect for a client that declares no capabilities (the
// go-sdk declares roots by default), so the worker serves it on its shared
// upstream session instead of one opened for this client alone.
func connectPlain(t *testing.T, endpoint string, header http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	return connectWith(t, endpoint, header, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
}

// connectSessionEra is connectPlain asking for 2025-11-25: a client that
// holds a session, for what a session decides (canary stickiness).
func connectSessionEra(t *testing.T, endpoint string, header http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	return connectEra(t, endpoint, header, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}}, "2025-11-25")
}

func connectWith(t *testing.T, endpoint string, header http.Header, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	return connectEra(t, endpoint, header, opts, "")
}

// connectEra connects asking for protocol version ("": the go-sdk
// client's default, 2026-07-28).
func connectEra(t *testing.T, endpoint string, header http.Header, opts *mcp.ClientOptions, version string) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "gateway-test", Version: "1"}, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: headerTransport{header}},
		MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func bearer(key string) http.Header { return http.Header{"Authorization": {"Bearer " + key}} }

// rawResponse is one HTTP exchange with the gateway.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	rpcErr struct {
		Code    int
		Message string
		Data    map[string]string
	}
	result json.RawMessage
}

// post sends one JSON-RPC message with raw HTTP, for the cases SDK clients hide.
func post(t *testing.T, url string, header http.Header, body string) rawResponse {
	t.Helper()
	return postCtx(t, context.Background(), url, header, body)
}

// postCtx is post bounded by ctx (a liveness bound: the test fails instead of
// hanging when the answer never comes).
func postCtx(t *testing.T, ctx context.Context, url string, header http.Header, body string) rawResponse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	out, isRPC := exchange(t, req)
	if len(out.body) > 0 && !isRPC {
		t.Fatalf("POST %s: answer is not JSON-RPC (HTTP %d): %s", url, out.status, out.body)
	}
	return out
}

// exchange sends req, reads the answer and decodes it as a JSON-RPC
// response; isRPC is false when the body is not one.
func exchange(t *testing.T, req *http.Request) (out rawResponse, isRPC bool) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	out = rawResponse{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	recordBody(out.body)
	var m struct {
		Result json.RawMessage
		Error  *struct {
			Code    int
			Message string
			Data    map[string]json.RawMessage // string members kept (elicitations are a list)
		}
	}
	if json.Unmarshal(out.body, &m) != nil {
		return out, false
	}
	out.result = m.Result
	if m.Error != nil {
		out.rpcErr.Code, out.rpcErr.Message = m.Error.Code, m.Error.Message
		for k, v := range m.Error.Data {
			var s string
			if json.Unmarshal(v, &s) == nil {
				if out.rpcErr.Data == nil {
					out.rpcErr.Data = map[string]string{}
				}
				out.rpcErr.Data[k] = s
			}
		}
	}
	return out, true
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// initSession initializes over raw HTTP and returns headers for later requests.
func initSession(t *testing.T, url string, header http.Header) http.Header {
	t.Helper()
	r := post(t, url, header, initBody)
	if r.status != http.StatusOK || r.header.Get("Mcp-Session-Id") == "" {
		t.Fatalf("initialize: HTTP %d, session %q: %s", r.status, r.header.Get("Mcp-Session-Id"), r.body)
	}
	h := header.Clone()
	h.Set("Mcp-Session-Id", r.header.Get("Mcp-Session-Id"))
	h.Set("Mcp-Protocol-Version", "2025-06-18")
	return h
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func jetstreamFor(nc *nats.Conn) (jetstream.JetStream, error) { return jetstream.New(nc) }

// testBusUser may use every subject of a test gateway's bus: tests inspect
// and inject what services send (a real deployment has no such user).
var testBusUser = bus.BusUser{User: "test-admin", Password: bus.NewPassword(), Unrestricted: true}

// testRoleUsers join a test gateway's bus as another process would, with
// the permissions of one role (an ingress replica, a worker replica, a
// usage reader), so tests exercise the role's subjects.
var testRoleUsers = map[bus.Role]bus.BusUser{}

func init() {
	for _, r := range []bus.Role{bus.RoleIngress, bus.RoleWorkers, bus.RoleUsage, bus.RoleAudit} {
		testRoleUsers[r] = bus.BusUser{User: "test-" + string(r), Password: bus.NewPassword(), Roles: []bus.Role{r}}
	}
}

func testBusUsers() []bus.BusUser {
	out := []bus.BusUser{testBusUser}
	for _, u := range testRoleUsers {
		out = append(out, u)
	}
	return out
}

// testConn connects to g's embedded NATS server in-process as testBusUser.
func testConn(t testing.TB, g *Gateway) *nats.Conn {
	t.Helper()
	return connectAs(t, g, testBusUser)
}

// roleConn connects to g's embedded NATS server in-process as the test user
// of role.
func roleConn(t testing.TB, g *Gateway, role bus.Role) *nats.Conn {
	t.Helper()
	return connectAs(t, g, testRoleUsers[role])
}

func connectAs(t testing.TB, g *Gateway, u bus.BusUser) *nats.Conn {
	t.Helper()
	nc, err := natsnode.ConnectInProcess(g.ns, natsnode.ConnectOptions{Name: u.User, User: u.User, Password: u.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
