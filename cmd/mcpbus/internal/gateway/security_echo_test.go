package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// An upstream that echoes the headers of each request back to the caller,
// everywhere an MCP server can put text: the initialize instructions, a
// result, an error's message and data, a progress notification, a log
// message and a sampling request. mcpbus injected its credentials into
// those headers; the caller must get [redacted] in their place, never the
// value, raw or JSON-escaped (toolworkers/credential/scrub.go).

// echoUpstream is a hand-written Streamable HTTP MCP server (raw net/http,
// so it can escape JSON the way other encoders do) with a token endpoint
// for oauth2 servers.
type echoUpstream struct {
	url string

	mu      sync.Mutex
	caps    map[string]string // session id -> client capabilities at initialize
	waiting map[string]chan struct{}
	calls   []http.Header // headers of every tools/call
	n       int
}

const echoOAuthToken = "oauth/SECRET-ç-token-0006"

func newEchoUpstream(t *testing.T) *echoUpstream {
	t.Helper()
	u := &echoUpstream{caps: map[string]string{}, waiting: map[string]chan struct{}{}}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	u.url = srv.URL
	return u
}

func (u *echoUpstream) toolCalls() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls)
}

func (u *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%s,"token_type":"Bearer","expires_in":3600}`, goJSON(echoOAuthToken))
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodDelete:
		return
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name         string          `json:"name"`
			Capabilities json.RawMessage `json:"capabilities"`
			Meta         struct {
				ProgressToken json.RawMessage `json:"progressToken"`
			} `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &m) != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	if m.Method == "" { // a client's answer to our sampling request
		u.mu.Lock()
		if ch := u.waiting[string(m.ID)]; ch != nil {
			close(ch)
			delete(u.waiting, string(m.ID))
		}
		u.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if len(m.ID) == 0 { // a notification
		w.WriteHeader(http.StatusAccepted)
		return
	}
	text, object := echoOf(r.Header)
	answer := func(member string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,%s}`, m.ID, member)
	}
	switch m.Method {
	case "initialize":
		u.mu.Lock()
		u.n++
		sid := "echo-session-" + strconv.Itoa(u.n)
		u.caps[sid] = string(m.Params.Capabilities)
		u.mu.Unlock()
		w.Header().Set("Mcp-Session-Id", sid)
		answer(`"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{},"logging":{}},"serverInfo":{"name":"echo","version":"1"},"instructions":` + text + `}`)
	case "tools/list":
		answer(`"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"fail","inputSchema":{"type":"object"}}]}`)
	case "tools/call":
		u.mu.Lock()
		u.calls = append(u.calls, r.Header.Clone())
		caps := u.caps[r.Header.Get("Mcp-Session-Id")]
		u.mu.Unlock()
		if m.Params.Name == "fail" {
			answer(`"error":{"code":-32000,"message":` + text + `,"data":` + object + `}`)
			return
		}
		u.stream(w, m.ID, m.Params.Meta.ProgressToken, strings.Contains(caps, `"sampling"`), text, object)
	default:
		answer(`"result":{}`)
	}
}

// stream answers a tools/call on an SSE stream: progress, a log message and
// a sampling request (answered before the result), each echoing.
func (u *echoUpstream) stream(w http.ResponseWriter, id, progressToken json.RawMessage, sampling bool, text, object string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	send := func(msg string) {
		fmt.Fprintf(w, "event: message\ndata: %s\n\n", msg)
		w.(http.Flusher).Flush()
	}
	if len(progressToken) > 0 {
		send(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":` + string(progressToken) + `,"progress":1,"total":2,"message":` + text + `}}`)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"echo","data":` + object + `}}`)
	if sampling {
		u.mu.Lock()
		u.n++
		sid := `"sample-` + strconv.Itoa(u.n) + `"`
		answered := make(chan struct{})
		u.waiting[sid] = answered
		u.mu.Unlock()
		send(`{"jsonrpc":"2.0","id":` + sid + `,"method":"sampling/createMessage","params":{"maxTokens":16,"messages":[{"role":"user","content":{"type":"text","text":` + text + `}}],"metadata":` + object + `}}`)
		select {
		case <-answered:
		case <-time.After(10 * time.Second):
		}
	}
	send(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":{"content":[{"type":"text","text":` + text + `}],"structuredContent":` + object + `}}`)
}

// echoOf renders request headers as a JSON string ("Name: value; ...") and as
// a JSON object holding them in several encodings: Go's, PHP's ('/' as \/,
// non-ASCII as \uXXXX), Python's (non-ASCII as \uXXXX), and each encoded
// once more as a JSON string inside the object (JSON text in a string).
func echoOf(h http.Header) (text, object string) {
	values := map[string]string{}
	var lines []string
	for name, v := range h {
		values[name] = v[0]
		lines = append(lines, name+": "+v[0])
	}
	if user, pass, ok := (&http.Request{Header: h}).BasicAuth(); ok {
		values["Basic-Decoded"] = user + ":" + pass
	}
	slices.Sort(lines)
	goText, _ := json.Marshal(values)
	php, py := jsonObject(values, true), jsonObject(values, false)
	object = `{"go":` + string(goText) + `,"php":` + php + `,"py":` + py +
		`,"nested":` + goJSON(string(goText)) + `,"nestedPHP":` + goJSON(php) + `,"nestedPy":` + jsonString(py, true) + `}`
	return goJSON(strings.Join(lines, "; ")), object
}

func goJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// jsonString encodes s as PHP (slash) or Python (no slash) do by default.
func jsonString(s string, slash bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '/' && slash:
			b.WriteString(`\/`)
		case r < 0x20 || r > 0x7e && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10)&0x3ff, 0xdc00+r&0x3ff)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func jsonObject(m map[string]string, slash bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = jsonString(k, slash) + ":" + jsonString(m[k], slash)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// forms is v as it may appear in a JSON answer: raw, escaped by Go, PHP and
// Python, and each of those escaped once more (JSON text inside a string).
func forms(v string) []string {
	inner := func(q string) string { return q[1 : len(q)-1] }
	out := []string{v}
	for _, f := range []string{inner(goJSON(v)), inner(jsonString(v, true)), inner(jsonString(v, false))} {
		out = append(out, f, inner(goJSON(f)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tapTransport sends a client's requests with fixed headers and keeps every
// response body it read, each on its own.
type tapTransport struct {
	h      http.Header
	mu     sync.Mutex
	bodies []*bytes.Buffer
}

func (tt *tapTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range tt.h {
		r.Header[k] = v
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	buf := &bytes.Buffer{}
	tt.mu.Lock()
	tt.bodies = append(tt.bodies, buf)
	tt.mu.Unlock()
	resp.Body = &tapBody{ReadCloser: resp.Body, tt: tt, buf: buf}
	return resp, nil
}

// read returns what the client read so far, one string per response.
func (tt *tapTransport) read() []string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	out := make([]string, len(tt.bodies))
	for i, b := range tt.bodies {
		out[i] = b.String()
	}
	return out
}

type tapBody struct {
	io.ReadCloser
	tt  *tapTransport
	buf *bytes.Buffer
}

func (b *tapBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.tt.mu.Lock()
	b.buf.Write(p[:n])
	b.tt.mu.Unlock()
	return n, err
}

// echoSeen is what the client's handlers received.
type echoSeen struct {
	mu                        sync.Mutex
	progress, logs, samplings []string
}

func (s *echoSeen) add(list *[]string, v any) {
	b, _ := json.Marshal(v)
	s.mu.Lock()
	*list = append(*list, string(b))
	s.mu.Unlock()
}

// Every credential type, echoed back by the upstream in every place it can
// put it, reaches the caller as [redacted]: never the value, raw or escaped.
func TestSecurityUpstreamEchoedCredentialsAreRedacted(t *testing.T) {
	up := newEchoUpstream(t)
	const (
		echoMaster   = "sk-echo-master-SECRET-4711"
		bearerValue  = "bearer/SECRET-é-0001"
		apiKeyValue  = "apikey/SECRET-ü-0002"
		basicValue   = "basic-user:basic/SECRET-ö-0003"
		authzSecret  = "authz/SECRET-ä-0004"
		staticValue  = "static/SECRET-ß-0005"
		clientSecret = "oauth-client/SECRET-0007"
		awsKeyID     = "AKIDECHOSECRET0008"
		awsSecretKey = "aws/secret/SECRET-0009"
		awsSession   = "aws/session/SECRET-0010"
		perRequest   = "perreq/SECRET-ñ-0011"
	)
	basicEncoded := base64.StdEncoding.EncodeToString([]byte(basicValue))
	registerSecret(echoMaster, bearerValue, apiKeyValue, basicValue, basicEncoded, "basic/SECRET-ö-0003", authzSecret,
		staticValue, echoOAuthToken, clientSecret, awsKeyID, awsSecretKey, awsSession, perRequest)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %q}
mcp_servers:
  bearer: {url: %[2]q, auth_type: bearer_token, auth_value: %[3]q}
  apikey: {url: %[2]q, auth_type: api_key, auth_value: %[4]q}
  basic: {url: %[2]q, auth_type: basic, auth_value: %[5]q}
  authz: {url: %[2]q, auth_type: authorization, auth_value: %[6]q}
  static: {url: %[2]q, static_headers: {X-Static-Secret: %[7]q}}
  oauth: {url: %[2]q, auth_type: oauth2, token_url: %[8]q, client_id: echo-client, client_secret: %[9]q}
  sigv4: {url: %[2]q, auth_type: aws_sigv4, aws_access_key_id: %[10]q, aws_secret_access_key: %[11]q, aws_session_token: %[12]q, aws_region_name: us-east-1, aws_service_name: execute-api}
  perreq: {url: %[2]q}
`, echoMaster, up.url+"/mcp", bearerValue, apiKeyValue, basicValue, "Custom "+authzSecret, staticValue,
		up.url+"/token", clientSecret, awsKeyID, awsSecretKey, awsSession), nil)

	for _, c := range []struct {
		server string
		header http.Header // the client's, besides its gateway key
		// sent checks the upstream got the credential (else the test proves nothing).
		sent    func(h http.Header) bool
		secrets []string
	}{
		{"bearer", nil, func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+bearerValue }, []string{bearerValue}},
		{"apikey", nil, func(h http.Header) bool { return h.Get("X-Api-Key") == apiKeyValue }, []string{apiKeyValue}},
		{"basic", nil, func(h http.Header) bool { return h.Get("Authorization") == "Basic "+basicEncoded },
			[]string{basicEncoded, basicValue, "basic/SECRET-ö-0003"}},
		{"authz", nil, func(h http.Header) bool { return h.Get("Authorization") == "Custom "+authzSecret }, []string{authzSecret}},
		{"static", nil, func(h http.Header) bool { return h.Get("X-Static-Secret") == staticValue }, []string{staticValue}},
		{"oauth", nil, func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+echoOAuthToken }, []string{echoOAuthToken, clientSecret}},
		{"sigv4", nil, func(h http.Header) bool {
			return h.Get("X-Amz-Security-Token") == awsSession && strings.Contains(h.Get("Authorization"), "Credential="+awsKeyID+"/")
		}, []string{awsKeyID, awsSecretKey, awsSession}},
		{"perreq", http.Header{"X-Mcp-Perreq-Authorization": {"Bearer " + perRequest}},
			func(h http.Header) bool { return h.Get("Authorization") == "Bearer "+perRequest }, []string{perRequest}},
	} {
		for _, era := range []string{"2025-11-25", bus.FirstModernVersion} {
			modern := era == bus.FirstModernVersion
			t.Run(c.server+"/"+era, func(t *testing.T) {
				before := len(up.toolCalls())
				seen, tap, cs := echoClient(t, g.URL()+"/mcp/"+c.server, c.header, echoMaster, era)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "p-1"}})
				if err != nil {
					t.Fatalf("tools/call echo: %v", err)
				}
				_, failErr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fail", Arguments: map[string]any{}})
				if failErr == nil {
					t.Fatal("tools/call fail: no error")
				}
				calls := up.toolCalls()[before:]
				if len(calls) != 2 || !c.sent(calls[0]) || !c.sent(calls[1]) {
					t.Fatalf("the upstream did not get the %s credential: %v", c.server, calls)
				}
				secrets := slices.Clone(c.secrets)
				if c.server == "sigv4" { // each request's own signature
					for _, h := range calls {
						_, sig, _ := strings.Cut(h.Get("Authorization"), "Signature=")
						secrets = append(secrets, sig)
					}
				}

				// Every channel delivered the echo, redacted.
				bustest.Eventually(t, 30*time.Second, "the progress and log notifications", func() error {
					seen.mu.Lock()
					defer seen.mu.Unlock()
					if len(seen.progress) == 0 || len(seen.logs) == 0 && !modern {
						return fmt.Errorf("%d progress and %d log notifications", len(seen.progress), len(seen.logs))
					}
					return nil
				})
				resText, _ := json.Marshal(res)
				seen.mu.Lock()
				got := map[string][]string{
					"instructions":     {cs.InitializeResult().Instructions},
					"result":           {string(resText)},
					"error":            {failErr.Error()},
					"progress":         seen.progress,
					"log message":      seen.logs,
					"sampling request": seen.samplings,
				}
				seen.mu.Unlock()
				if c.server == "perreq" {
					delete(got, "instructions") // initialize runs on the shared session, without the caller's header
				}
				if modern {
					// The go-sdk client puts no log level in _meta, and a
					// 2026-07-28 request without one gets no log messages.
					delete(got, "log message")
				}
				for what, list := range got {
					if len(list) == 0 || !strings.Contains(strings.Join(list, " "), "[redacted]") {
						t.Errorf("%s: no [redacted] in the %s: %q", c.server, what, list)
					}
				}
				// Nothing the client read holds a value in any form.
				bodies := tap.read()
				for _, b := range bodies {
					recordBody([]byte(b)) // and the suite-wide scan checks the raw values
				}
				for _, secret := range secrets {
					for _, f := range forms(secret) {
						for i, b := range bodies {
							if strings.Contains(b, f) {
								t.Errorf("%s: response %d holds %q (a form of a credential): %.300s", c.server, i, f, b)
							}
						}
					}
				}
			})
		}
	}
}

// echoClient connects a go-sdk client that declares sampling (so the
// upstream asks it to sample) and keeps what it receives.
func echoClient(t *testing.T, endpoint string, header http.Header, key, version string) (*echoSeen, *tapTransport, *mcp.ClientSession) {
	t.Helper()
	seen := &echoSeen{}
	h := bearer(key)
	for k, v := range header {
		h[k] = v
	}
	tap := &tapTransport{h: h}
	opts := &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			seen.add(&seen.samplings, req.Params)
			return &mcp.CreateMessageResult{Role: "assistant", Model: "m", Content: &mcp.TextContent{Text: "ok"}}, nil
		},
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			seen.add(&seen.logs, req.Params)
		},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			seen.add(&seen.progress, req.Params)
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "echo-test", Version: "1"}, opts).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: tap},
		MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return seen, tap, cs
}
