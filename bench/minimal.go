package main

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
)

// The minimal upstream (issue 22, docs/plans/perf2.md): valid MCP over
// Streamable HTTP with one tool, echo, answered as plain JSON, and no SDK.
// The go-sdk demo server spends ~650 µs of CPU on a call, which caps every
// row of the table and hides most of a gateway's own cost; this one spends
// what decoding one small message and writing the answer takes. The harness
// runs itself in this mode as a separate process (-minimal-upstream), as it
// does the bare proxy.

// minimalAuthEnv carries the credential the minimal upstream requires (the
// whole Authorization header value).
const minimalAuthEnv = "MCPBUS_BENCH_MINIMAL_AUTHORIZATION"

// minimalVersions are the revisions it answers initialize with (the
// client's, when it is one of them); 2026-07-28's server/discover is not
// served, so clients fall back to initialize.
var minimalVersions = map[string]bool{"2025-11-25": true, "2025-06-18": true, "2025-03-26": true, "2024-11-05": true}

// minimalMessage is what the upstream reads of a request.
type minimalMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		ProtocolVersion string `json:"protocolVersion"`
		Name            string `json:"name"`
		Arguments       struct {
			Text string `json:"text"`
		} `json:"arguments"`
	} `json:"params"`
}

const minimalTools = `{"tools":[{"name":"echo","description":"Echoes its text.","inputSchema":{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}}]}`

// minimalHandler is the upstream's HTTP handler; auth is the Authorization
// value it requires ("" requires none).
func minimalHandler(auth string) http.Handler {
	var sessions atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(auth)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodPost:
		case http.MethodDelete:
			w.WriteHeader(http.StatusOK)
			return
		default: // no server-to-client stream
			w.Header().Set("Allow", "POST, DELETE")
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var m minimalMessage
		if err != nil || json.Unmarshal(body, &m) != nil {
			minimalAnswer(w, []byte("null"), `"error":{"code":-32700,"message":"parse error"}`)
			return
		}
		if len(m.ID) == 0 { // a notification
			w.WriteHeader(http.StatusAccepted)
			return
		}
		switch m.Method {
		case "initialize":
			v := m.Params.ProtocolVersion
			if !minimalVersions[v] {
				v = "2025-11-25"
			}
			w.Header().Set("Mcp-Session-Id", "minimal-"+strconv.FormatUint(sessions.Add(1), 10))
			minimalAnswer(w, m.ID, `"result":{"protocolVersion":`+strconv.Quote(v)+`,"capabilities":{"tools":{}},"serverInfo":{"name":"minimal","version":"1"}}`)
		case "ping":
			minimalAnswer(w, m.ID, `"result":{}`)
		case "tools/list":
			minimalAnswer(w, m.ID, `"result":`+minimalTools)
		case "tools/call":
			if m.Params.Name != "echo" {
				minimalAnswer(w, m.ID, `"error":{"code":-32602,"message":`+strconv.Quote("unknown tool "+m.Params.Name)+`}`)
				return
			}
			text, _ := json.Marshal(m.Params.Arguments.Text)
			minimalAnswer(w, m.ID, `"result":{"content":[{"type":"text","text":`+string(text)+`}]}`)
		default:
			minimalAnswer(w, m.ID, `"error":{"code":-32601,"message":`+strconv.Quote("method not found: "+m.Method)+`}`)
		}
	})
}

// minimalAnswer writes the JSON-RPC response with id and member (a result
// or an error, as JSON text).
func minimalAnswer(w http.ResponseWriter, id json.RawMessage, member string) {
	w.Header().Set("Content-Type", "application/json")
	out := make([]byte, 0, 64+len(member))
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, ',')
	out = append(out, member...)
	out = append(out, '}')
	w.Write(out)
}

// serveMinimalUpstream listens on 127.0.0.1, prints the "listening on" line
// the harness waits for, and serves until SIGTERM or SIGINT.
func serveMinimalUpstream() error {
	return serveLoopback("minimal upstream", "/mcp", minimalHandler(os.Getenv(minimalAuthEnv)))
}

// startMinimalUpstream runs this harness binary as the minimal upstream,
// requiring authorization, and returns it and its MCP URL.
func startMinimalUpstream(authorization string, tmp string) (*proc, string, error) {
	return startSelf("minimal-upstream", []string{"-minimal-upstream"}, []string{minimalAuthEnv + "=" + authorization}, tmp)
}
