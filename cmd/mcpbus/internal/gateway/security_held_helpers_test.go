package gateway

// Helpers shared by the security_held_*_test.go files: the regression suite
// for the attacks on mcpbus that held (an attacker's review tried 36 kinds of
// attack on loopback; these are the defences that stood, kept standing). Each
// file says at its top which older tests cover the rest of its category.
// Helper names start with "held" so they cannot collide with other files'.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// heldXFF is general_settings for a gateway whose test client, on 127.0.0.1
// (a trusted proxy), chooses its IP class with X-Forwarded-For: a 10.x entry
// is internal, anything else external.
const heldXFF = `use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["127.0.0.0/8"], mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, admin]`

// Addresses for X-Forwarded-For.
const (
	heldInternalIP = "10.1.2.3"
	heldExternalIP = "203.0.113.7"
)

// heldWith returns a copy of h with X-Forwarded-For lines added.
func heldWith(h http.Header, xff ...string) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	for _, x := range xff {
		out.Add("X-Forwarded-For", x)
	}
	return out
}

// heldRequest is one request an upstream received.
type heldRequest struct {
	method, url string
	header      http.Header
	body        []byte
}

// heldTap records every request an upstream receives (method, URL, headers,
// body), then hands it to next.
type heldTap struct {
	mu   sync.Mutex
	reqs []heldRequest
	next http.Handler
}

func (tp *heldTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	tp.mu.Lock()
	tp.reqs = append(tp.reqs, heldRequest{r.Method, r.URL.String(), r.Header.Clone(), body})
	tp.mu.Unlock()
	tp.next.ServeHTTP(w, r)
}

func (tp *heldTap) requests() []heldRequest {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]heldRequest(nil), tp.reqs...)
}

// leaks says where secret reached this upstream: in a URL, a header name
// (compared ignoring case, as header names are), a header value or a body.
func (tp *heldTap) leaks(secret string) []string {
	var out []string
	lower := strings.ToLower(secret)
	for i, r := range tp.requests() {
		if strings.Contains(r.url, secret) {
			out = append(out, fmt.Sprintf("request %d (%s): in the URL", i, r.method))
		}
		for name, vals := range r.header {
			if strings.Contains(strings.ToLower(name), lower) {
				out = append(out, fmt.Sprintf("request %d (%s): in a header name", i, r.method))
			}
			for _, v := range vals {
				if strings.Contains(v, secret) {
					out = append(out, fmt.Sprintf("request %d (%s): in header %s", i, r.method, name))
				}
			}
		}
		if bytes.Contains(r.body, []byte(secret)) {
			out = append(out, fmt.Sprintf("request %d (%s): in the body", i, r.method))
		}
	}
	return out
}

// sawHeader reports whether some request carried header name with value.
func (tp *heldTap) sawHeader(name, value string) bool {
	for _, r := range tp.requests() {
		for _, v := range r.header.Values(name) {
			if v == value {
				return true
			}
		}
	}
	return false
}

// heldHTTPUpstream is the demo server over Streamable HTTP behind a heldTap.
func heldHTTPUpstream(t *testing.T, name string) (string, *heldTap) {
	t.Helper()
	tp := &heldTap{next: demo.Handler(name)}
	srv := httptest.NewServer(tp)
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", tp
}

// heldSSEUpstream is the demo server over the legacy HTTP+SSE transport
// behind a heldTap.
func heldSSEUpstream(t *testing.T, name string) (string, *heldTap) {
	t.Helper()
	h := mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return demo.NewServer(name) }, nil)
	tp := &heldTap{next: h}
	srv := httptest.NewServer(tp)
	t.Cleanup(srv.Close)
	return srv.URL, tp
}

// heldConnectLegacy opens a go-sdk client session over the legacy HTTP+SSE
// transport (GET /sse..., POST /messages...). The stream lives as long as
// the session (connectLegacy's does not outlive its connect timeout).
func heldConnectLegacy(t *testing.T, endpoint string, header http.Header) (*mcp.ClientSession, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "held-legacy", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.SSEClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: headerTransport{header}}}, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// heldDo sends one request with exactly these headers (names as given, so
// odd spellings reach the wire) and reads the answer; the body is kept for
// the suite's secret scan.
func heldDo(t *testing.T, method, url string, h http.Header, body string) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	out, _ := exchange(t, req)
	return out
}

// heldRESTError decodes a REST error answer: {"error":{"message","type","code"}}.
func heldRESTError(body []byte) (code, message string) {
	var e restErr
	_ = json.Unmarshal(body, &e)
	return e.Error.Code, e.Error.Message
}

// heldFind lists, for what, each secret that text contains.
func heldFind(what, text string, secrets ...string) []string {
	var out []string
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			out = append(out, fmt.Sprintf("%s contains the secret %.6s…", what, s))
		}
	}
	return out
}

// heldBusTap keeps every message published on a subject pattern of a
// gateway's NATS server: subject, headers and data.
type heldBusTap struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	nc   *nats.Conn
}

func heldTapBus(t *testing.T, g *testGateway, subject string) *heldBusTap {
	t.Helper()
	nc, err := testConn(t, g.Gateway), error(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &heldBusTap{nc: nc}
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) {
		b.mu.Lock()
		b.msgs = append(b.msgs, m)
		b.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return b
}

// text is everything tapped so far, one message per line group, after a
// round trip so messages already published have arrived.
func (b *heldBusTap) text() string {
	_ = b.nc.Flush()
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, m := range b.msgs {
		fmt.Fprintf(&sb, "subject %s reply %s\n", m.Subject, m.Reply)
		names := make([]string, 0, len(m.Header))
		for k := range m.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&sb, "%s: %s\n", k, strings.Join(m.Header[k], ", "))
		}
		sb.Write(m.Data)
		sb.WriteString("\n")
	}
	return sb.String()
}

// count is how many messages were tapped on subjects starting with prefix.
func (b *heldBusTap) count(prefix string) int {
	_ = b.nc.Flush()
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, m := range b.msgs {
		if strings.HasPrefix(m.Subject, prefix) {
			n++
		}
	}
	return n
}

// heldSpanText is everything the exporter's spans say: names, attributes,
// events, links and status descriptions.
func heldSpanText(exp *tracetest.InMemoryExporter) string {
	var sb strings.Builder
	for _, s := range exp.GetSpans() {
		fmt.Fprintf(&sb, "span %q status %v %q\n", s.Name, s.Status.Code, s.Status.Description)
		for _, kv := range s.Attributes {
			fmt.Fprintf(&sb, "  %s=%s\n", kv.Key, kv.Value.Emit())
		}
		for _, ev := range s.Events {
			fmt.Fprintf(&sb, "  event %q\n", ev.Name)
			for _, kv := range ev.Attributes {
				fmt.Fprintf(&sb, "    %s=%s\n", kv.Key, kv.Value.Emit())
			}
		}
		for _, l := range s.Links {
			for _, kv := range l.Attributes {
				fmt.Fprintf(&sb, "  link %s=%s\n", kv.Key, kv.Value.Emit())
			}
		}
	}
	return sb.String()
}
