package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The worker's share of the hot path: a tools/call from a client without
// capabilities (the shared upstream session), as the router sends it, to a
// go-sdk upstream on loopback and back. allocs/op counts the whole process
// (upstream server included); compare runs, not absolute numbers. With
// credential the server has a bearer token and a static header, which every
// answer is checked for before it leaves the worker (scrub.go).
func benchWorker(b *testing.B, stream, credential bool) {
	benchWorkerAudit(b, stream, credential, config.Audit{})
}

// benchWorkerAudit is benchWorker with audit a (audit.go); on, the audit
// stream exists, so each record is stored as in a gateway.
func benchWorkerAudit(b *testing.B, stream, credential bool, a config.Audit) {
	benchWorkerOpts(b, stream, credential, Options{Audit: a})
}

// benchWorkerOpts is benchWorker with the worker's options o (audit,
// guards).
func benchWorkerOpts(b *testing.B, stream, credential bool, o Options) {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	srv := streamingServer(b, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	ns := bustest.Server(b)
	nc := bustest.Conn(b, ns)
	spec := bus.ServerSpec{Name: "bench", URL: srv.URL + "/mcp"}
	if credential {
		spec.AuthType, spec.AuthValue = "bearer_token", "bench-token-0123456789abcdef"
		spec.StaticHeaders = map[string]string{"X-Tenant": "bench-tenant-42"}
	}
	if o.Audit.Enabled {
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bus.AuditStream(context.Background(), js, bus.AuditStreamOptions{MaxBytes: 64 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := Start(bustest.Conn(b, ns), spec, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	if err := w.nc.Flush(); err != nil {
		b.Fatal(err)
	}
	env := bus.Envelope{Caller: bus.Identity{KeyID: "bench", Permissions: bus.Permissions{AllServers: true}}, IPClass: bus.Internal,
		Session: "bench-session", ProtocolVersion: "2025-06-18"}
	if stream {
		env.Stream = bus.StreamSubject("bench", "s1")
	}
	hdr := env.Header()
	if stream { // as the ingress will: the client's (empty) capabilities on every request
		hdr.Set(bus.HeaderClientCapabilities, "{}")
	}
	var n int
	call := func() {
		n++
		id := strconv.Itoa(n)
		hdr.Set(bus.HeaderRequestID, "r"+id)
		m, err := nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC("bench"), Header: hdr,
			Data: []byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m` + id + `"}}}`)}, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(m.Data, []byte(`"text":"m`+id+`"`)) {
			b.Fatalf("answer %s", m.Data)
		}
	}
	call()
	b.ReportAllocs()
	for b.Loop() {
		call()
	}
}

func BenchmarkWorkerToolsCall(b *testing.B)               { benchWorker(b, false, false) }
func BenchmarkWorkerToolsCallWithStream(b *testing.B)     { benchWorker(b, true, false) }
func BenchmarkWorkerToolsCallWithCredential(b *testing.B) { benchWorker(b, true, true) }

// The bookkeeping a tools/call from a client without capabilities adds on the
// shared session (picking the session, registering the call for
// cancellation, the stream relay) allocates nothing.
func TestHotPathBookkeepingAllocatesNothing(t *testing.T) {
	w := &Worker{up: &config.Upstream{Name: "bench", Transport: "http"}}
	w.shared = &link{w: w}
	env := bus.Envelope{Caller: bus.Identity{KeyID: "k"}, Session: "s", Stream: bus.StreamSubject("i", "t"),
		ClientCapabilities: json.RawMessage(`{}`), ProtocolVersion: "2025-06-18"}
	params := json.RawMessage(`{"name":"echo","arguments":{"text":"hi"}}`)
	id := json.RawMessage(`7`)
	cancel := func() {}
	allocs := testing.AllocsPerRun(1000, func() {
		l := w.linkFor(&env, w.perRequestHeaders(env.Forward))
		c := w.track(&env, id, cancel)
		p, r := w.legParams(params, &env, l)
		if l != w.shared || len(p) != len(params) || r == nil {
			t.Fatal("not the hot path")
		}
		r.Release()
		w.untrack(env.RequestID, c)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per call", allocs)
	}
}

// The same call with audit on (arguments hashed, or kept in full): the
// record is built on the call's goroutine and published on the worker's.
func BenchmarkWorkerToolsCallAuditHash(b *testing.B) {
	benchWorkerAudit(b, false, false, config.Audit{Enabled: true, Arguments: bus.AuditArgsHash})
}

func BenchmarkWorkerToolsCallAuditFull(b *testing.B) {
	benchWorkerAudit(b, false, false, config.Audit{Enabled: true, Arguments: bus.AuditArgsFull})
}
