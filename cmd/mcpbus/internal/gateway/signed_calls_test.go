package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
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
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// verifiedUpstream is an MCP server behind what a zero-trust upstream puts
// in front of it (a FastMCP JWTVerifier): every request must carry a token
// the gateway's JWKS verifies, in header; others get 401.
type verifiedUpstream struct {
	header string
	next   http.Handler

	mu       sync.Mutex
	v        *oauth.Validator
	claims   []map[string]any
	kids     map[string]int
	headers  []http.Header
	refusals []string
}

func newVerifiedUpstream(t *testing.T, name, header string) (string, *verifiedUpstream) {
	t.Helper()
	u := &verifiedUpstream{header: header, next: demo.Handler(name), kids: map[string]int{}}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", u
}

// trust makes the upstream verify against the gateway at base.
func (u *verifiedUpstream) trust(t *testing.T, base string) {
	t.Helper()
	v, err := oauth.New([]oauth.Issuer{{Issuer: "https://gw.example.test", Audiences: []string{"weather-mcp"}, JWKSURL: base + "/.well-known/jwks.json"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	u.mu.Lock()
	u.v = v
	u.mu.Unlock()
}

func (u *verifiedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	v := u.v
	u.headers = append(u.headers, r.Header.Clone())
	u.mu.Unlock()
	tok, ok := strings.CutPrefix(r.Header.Get(u.header), "Bearer ")
	if v == nil || !ok {
		u.refuse(w, "no token")
		return
	}
	c, verr := v.Validate(r.Context(), tok)
	if verr != nil {
		u.refuse(w, verr.Error())
		return
	}
	u.mu.Lock()
	u.claims = append(u.claims, c.All)
	u.kids[kidOf(tok)]++
	u.mu.Unlock()
	u.next.ServeHTTP(w, r)
}

func (u *verifiedUpstream) refuse(w http.ResponseWriter, why string) {
	u.mu.Lock()
	u.refusals = append(u.refusals, why)
	u.mu.Unlock()
	http.Error(w, why, http.StatusUnauthorized)
}

// calls are the claims of the verified tools/call requests.
func (u *verifiedUpstream) calls() []map[string]any {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []map[string]any
	for _, c := range u.claims {
		if c["method"] == bus.MethodToolsCall {
			out = append(out, c)
		}
	}
	return out
}

func kidOf(tok string) string {
	head, _, _ := strings.Cut(tok, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(head)
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.Kid
}

const signedCallsYAML = `
general_settings: {master_key: %s}
mcp_servers:
  weather: {url: %q, transport: http}
  billing: {url: %q, transport: http, auth_type: bearer_token, auth_value: os.environ/BILLING_TOKEN}
guardrails:
  - guardrail_name: mcp-jwt-signer
    litellm_params:
      guardrail: mcp_jwt_signer
      mode: pre_mcp_call
      default_on: true
      issuer: https://gw.example.test
      audience: weather-mcp
      ttl_seconds: 60
`

// With the mcp_jwt_signer guardrail, a tools/call reaches a zero-trust
// upstream with a token the gateway's JWKS verifies, naming the caller,
// team, server, tool and request; the caller's key never goes upstream;
// a request that did not come through the gateway is refused; a server
// with its own credential in Authorization keeps it and gets the token in
// X-Mcpbus-Token.
func TestSignedCalls(t *testing.T) {
	weatherURL, weather := newVerifiedUpstream(t, "weather", "Authorization")
	billingURL, billing := newVerifiedUpstream(t, "billing", "X-Mcpbus-Token")
	const billingToken = "billing-upstream-credential"
	g := startGateway(t, fmt.Sprintf(signedCallsYAML, master, weatherURL, billingURL), map[string]string{"BILLING_TOKEN": billingToken})
	weather.trust(t, g.URL())
	billing.trust(t, g.URL())

	status, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "forecasters"})
	teamID, _ := team["team_id"].(string)
	if status != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: HTTP %d %v", status, team)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "alice-laptop", "user_id": "alice", "team_id": teamID})

	for _, server := range []string{"weather", "billing"} {
		cs, err := connect(t, g.URL()+"/mcp/"+server, bearer(key))
		if err != nil {
			t.Fatalf("%s: connect: %v", server, err)
		}
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		if err != nil || res.IsError {
			t.Fatalf("%s: tools/call: %v %+v", server, err, res)
		}
		cs.Close()
	}

	for name, u := range map[string]*verifiedUpstream{"weather": weather, "billing": billing} {
		calls := u.calls()
		if len(calls) != 1 {
			t.Fatalf("%s: %d verified tools/call requests, want 1 (refused: %v)", name, len(calls), u.refusals)
		}
		c := calls[0]
		for claim, want := range map[string]any{"iss": "https://gw.example.test", "aud": "weather-mcp", "sub": "alice", "server": name,
			"tool": "echo", "team_id": teamID, "act": map[string]any{"sub": teamID}, "scope": "mcp:tools/call mcp:tools/echo:call"} {
			if fmt.Sprint(c[claim]) != fmt.Sprint(want) {
				t.Errorf("%s: claim %s = %v, want %v", name, claim, c[claim], want)
			}
		}
		if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 60 {
			t.Errorf("%s: exp-iat = %v, want the 60 s ttl", name, exp-iat)
		}
		// The request id is the one the gateway logged for the call.
		rid, _ := c["request_id"].(string)
		if rid == "" || !strings.Contains(g.logs.String(), "request_id="+rid) {
			t.Errorf("%s: request_id %q is not a request the gateway logged", name, rid)
		}
		// Every request (initialize too) was signed; the caller's key never
		// went upstream.
		if len(u.refusals) > 0 {
			t.Errorf("%s: requests from the gateway refused: %v", name, u.refusals)
		}
		u.mu.Lock()
		for _, h := range u.headers {
			for k, vs := range h {
				if strings.Contains(strings.Join(vs, " "), key) {
					t.Errorf("%s: the caller's key reached the upstream in %s", name, k)
				}
			}
		}
		u.mu.Unlock()
	}
	billing.mu.Lock()
	for _, h := range billing.headers {
		if h.Get("Authorization") != "Bearer "+billingToken {
			t.Errorf("billing: Authorization %q, want the server's own credential", h.Get("Authorization"))
		}
	}
	billing.mu.Unlock()

	// Straight to the upstream, without the gateway: refused, with no token
	// and with the caller's gateway key alike.
	for _, h := range []http.Header{nil, bearer(key)} {
		req, _ := http.NewRequest(http.MethodPost, weatherURL, strings.NewReader(rpc("tools/call", 1, `{"name":"echo","arguments":{"text":"x"}}`)))
		req.Header = h.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("direct call (key sent: %v): HTTP %d, want 401", h != nil, resp.StatusCode)
		}
	}
}

// Replicas sign with one key: a second worker process of the same server
// signs with the key the registry made (it never saw the config's key
// material, only the bus), the JWKS holds that one key, and the upstream
// verifies the tokens of both processes.
func TestSignedCallsReplicasShareOneKey(t *testing.T) {
	weatherURL, weather := newVerifiedUpstream(t, "weather", "Authorization")
	yaml := fmt.Sprintf(signedCallsYAML, master, weatherURL, "http://127.0.0.1:1/mcp")
	env := map[string]string{"BILLING_TOKEN": "x"}
	g := startGateway(t, yaml, env)
	weather.trust(t, g.URL())
	cfg, err := config.Parse("config.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	key := generateKey(t, g.URL(), map[string]any{"user_id": "bob"})
	call := func() error {
		cs, err := connect(t, g.URL()+"/mcp/weather", bearer(key))
		if err != nil {
			return err
		}
		defer cs.Close()
		_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		return err
	}
	if err := call(); err != nil { // the gateway's own worker
		t.Fatal(err)
	}

	// A second worker process, on a connection of its own; then the
	// gateway's workers stop, so the calls go to it alone.
	nc := roleConn(t, g.Gateway, bus.RoleWorkers)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m, err := StartWorkers(ctx, nc, toolworkers.ManagerOptions{Only: []string{"weather"}, Worker: toolworkers.Options{
		Env: func(string) (string, bool) { return "", false }, Secrets: g.secrets, ConfigServers: cfg.Servers,
		Signer: WorkerSigner(ctx, nc, cfg.SignedCalls, g.secrets, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	nc.Flush()
	g.workers.Stop()
	before := len(weather.calls())
	bustest.Eventually(t, 10*time.Second, "a call served by the second process", func() error {
		if err := call(); err != nil {
			return err
		}
		return bustest.AtLeast("verified calls", len(weather.calls()), before+1)
	})

	resp, err := http.Get(g.URL() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&set)
	resp.Body.Close()
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want the one gateway key", len(set.Keys))
	}
	weather.mu.Lock()
	defer weather.mu.Unlock()
	if len(weather.refusals) > 0 || len(weather.kids) != 1 || weather.kids[set.Keys[0].Kid] == 0 {
		t.Fatalf("kids seen %v, refusals %v: want every token under the JWKS's one key %s", weather.kids, weather.refusals, set.Keys[0].Kid)
	}
}
