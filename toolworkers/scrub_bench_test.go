package toolworkers

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

// BenchmarkWorkerToolsCallWithCredential is BenchmarkWorkerToolsCall on a
// server with a configured credential (a bearer token and a static header):
// the answer is checked for both before it leaves the worker (scrub.go).
func BenchmarkWorkerToolsCallWithCredential(b *testing.B) {
	s := mcp.NewServer(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	srv := streamingServer(b, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	ns := bustest.Server(b)
	nc := bustest.Conn(b, ns)
	w, err := Start(bustest.Conn(b, ns), bus.ServerSpec{Name: "bench", URL: srv.URL + "/mcp",
		AuthType: "bearer_token", AuthValue: "bench-token-0123456789abcdef",
		StaticHeaders: map[string]string{"X-Tenant": "bench-tenant-42"}},
		Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	if err := w.nc.Flush(); err != nil {
		b.Fatal(err)
	}
	env := bus.Envelope{Caller: bus.Identity{KeyID: "bench", Permissions: bus.Permissions{AllServers: true}}, IPClass: bus.Internal,
		Session: "bench-session", ProtocolVersion: "2025-06-18", Stream: bus.StreamSubject("bench", "s1")}
	hdr := env.Header()
	hdr.Set(bus.HeaderClientCapabilities, "{}")
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
