package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

// Benchmarks of the hot path, in one process: ingress HTTP handler -> router
// -> worker -> upstream (the go-sdk demo server on loopback HTTP), over the
// embedded NATS server's in-process connections. `make bench` runs them (with
// -benchmem) from the bench harness; see docs/PERFORMANCE.md.
//
// allocs/op and ns/op count everything in the process: the benchmark's HTTP
// client and the upstream server too. BenchmarkDirectUpstreamInProcess is the
// same loop straight to the upstream, so the difference is the gateway's share.

const benchUpstreamToken = "bench-upstream-token"

// benchSetup starts the demo upstream (behind a bearer credential) and a
// gateway in front of it, and returns the gateway and the upstream URL.
func benchSetup(b *testing.B) (*Gateway, string) { return benchSetupWith(b, Options{}) }

// benchSetupWith is benchSetup with o's RouterOnly.
func benchSetupWith(b *testing.B, o Options) (*Gateway, string) {
	b.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+benchUpstreamToken {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		benchDemo.ServeHTTP(w, r)
	}))
	b.Cleanup(up.Close)
	env := map[string]string{"BENCH_UPSTREAM_TOKEN": benchUpstreamToken}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	yaml := fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q, auth_type: bearer_token, auth_value: os.environ/BENCH_UPSTREAM_TOKEN}\n", master, up.URL+"/mcp")
	return benchGateway(b, yaml, lookup, o.RouterOnly), up.URL + "/mcp"
}

// benchGateway starts a gateway of config yaml (environment lookup, may be
// nil) for a benchmark, logging warnings only, closed when it ends.
func benchGateway(b *testing.B, yaml string, lookup config.LookupEnv, routerOnly bool) *Gateway {
	b.Helper()
	cfg, err := config.Parse("config.yaml", []byte(yaml), lookup)
	if err != nil {
		b.Fatal(err)
	}
	g, err := Start(context.Background(), Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: b.TempDir(), NATSListen: "off", Env: lookup, RouterOnly: routerOnly,
		BusUsers: testBusUsers(),
		Log:      slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Close(ctx)
	})
	return g
}

var benchDemo = demo.Handler("demo")

// benchClient is a keep-alive HTTP client with room for parallel benchmarks.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}}
}

var benchID atomic.Int64

// benchPost sends one JSON-RPC message and returns the status, the session id
// header and the body (in buf).
func benchPost(c *http.Client, url, auth, sid string, body []byte, buf *bytes.Buffer) (int, string, error) {
	return benchPostWith(c, url, auth, sid, nil, body, buf)
}

// benchPostWith is benchPost with extra headers.
func benchPostWith(c *http.Client, url, auth, sid string, extra http.Header, body []byte, buf *bytes.Buffer) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json, text/event-stream"}
	req.Header["Authorization"] = []string{auth}
	for k, v := range extra {
		req.Header[k] = v
	}
	if sid != "" {
		req.Header["Mcp-Session-Id"] = []string{sid}
		req.Header["Mcp-Protocol-Version"] = []string{"2025-06-18"}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	buf.Reset()
	_, err = io.Copy(buf, resp.Body)
	return resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), err
}

// benchSession opens an MCP session (initialize + notifications/initialized).
func benchSession(c *http.Client, url, auth string) (string, error) {
	var buf bytes.Buffer
	st, sid, err := benchPost(c, url, auth, "", []byte(initBody), &buf)
	if err != nil || st != http.StatusOK || sid == "" {
		return "", fmt.Errorf("initialize: HTTP %d, %v: %s", st, err, buf.Bytes())
	}
	st, _, err = benchPost(c, url, auth, sid, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), &buf)
	if err != nil || st/100 != 2 {
		return "", fmt.Errorf("notifications/initialized: HTTP %d, %v: %s", st, err, buf.Bytes())
	}
	return sid, nil
}

// benchCall sends one tools/call echo with a fresh id and checks the echo.
func benchCall(c *http.Client, url, auth, sid string, buf *bytes.Buffer) error {
	id := strconv.FormatInt(benchID.Add(1), 10)
	body := []byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m` + id + `"}}}`)
	st, _, err := benchPost(c, url, auth, sid, body, buf)
	if err != nil {
		return err
	}
	if st != http.StatusOK || !bytes.Contains(buf.Bytes(), []byte(`"text":"m`+id+`"`)) {
		return fmt.Errorf("HTTP %d: %s", st, buf.Bytes())
	}
	return nil
}

func benchCalls(b *testing.B, url, auth string) {
	c := benchClient()
	sid, err := benchSession(c, url, auth)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := benchCall(c, url, auth, sid, &buf); err != nil { // warm: upstream session, connections
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := benchCall(c, url, auth, sid, &buf); err != nil {
			b.Fatal(err)
		}
	}
}

// One tools/call through the whole gateway: HTTP POST (with a session and the
// master key) -> ingress (auth.verify answered from its cache) -> worker ->
// upstream and back; the router is skipped, as it would only forward the call
// (ingress/target.go).
func BenchmarkToolsCallInProcess(b *testing.B) {
	g, _ := benchSetup(b)
	benchCalls(b, g.URL()+"/mcp/demo", "Bearer "+master)
}

// The same with every message through the router (Options.RouterOnly): what
// the direct send saves.
func BenchmarkToolsCallInProcessViaRouter(b *testing.B) {
	g, _ := benchSetupWith(b, Options{RouterOnly: true})
	benchCalls(b, g.URL()+"/mcp/demo", "Bearer "+master)
}

// The same loop straight to the upstream (the baseline of the one above).
func BenchmarkDirectUpstreamInProcess(b *testing.B) {
	_, up := benchSetup(b)
	benchCalls(b, up, "Bearer "+benchUpstreamToken)
}

// Many clients at once through the gateway, one session each (GOMAXPROCS
// goroutines; ns/op is wall time per call across all of them).
func BenchmarkToolsCallInProcessParallel(b *testing.B) {
	g, _ := benchSetup(b)
	url, auth := g.URL()+"/mcp/demo", "Bearer "+master
	c := benchClient()
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		sid, err := benchSession(c, url, auth)
		if err != nil {
			b.Error(err)
			return
		}
		var buf bytes.Buffer
		for pb.Next() {
			if err := benchCall(c, url, auth, sid, &buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// The bus part alone: a NATS request to router.rpc with the envelope the
// ingress would send (no HTTP on the caller's side, no auth.verify) -> router
// -> worker -> upstream.
func BenchmarkRouterWorkerNATS(b *testing.B) {
	g, _ := benchSetup(b)
	nc := testConn(b, g)
	env := bus.Envelope{Caller: bus.Identity{KeyID: "bench", Permissions: bus.Permissions{AllServers: true}}, IPClass: bus.Internal,
		Servers: []string{"demo"}, ProtocolVersion: "2025-06-18"}
	call := func() error {
		id := strconv.FormatInt(benchID.Add(1), 10)
		env.RequestID = "bench-" + id
		msg := &nats.Msg{Subject: bus.SubjectRouterRPC, Header: env.Header(),
			Data: []byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m` + id + `"}}}`)}
		reply, err := nc.RequestMsg(msg, 10*time.Second)
		if err != nil {
			return err
		}
		if err := bus.ReplyError(reply); err != nil {
			return err
		}
		if !bytes.Contains(reply.Data, []byte(`"text":"m`+id+`"`)) {
			return fmt.Errorf("reply: %s", reply.Data)
		}
		return nil
	}
	if err := call(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
}
