package gateway

// Held attack 2: credentials (upstream auth_value, static_headers values,
// OAuth2 client_secret and access tokens, AWS keys, secrets in an upstream
// URL, the master key, virtual keys, wrong keys a caller guessed) never appear
// in logs (debug level), /metrics, usage events, registry API answers, error
// answers of upstreams that fail with 401/403/500 while echoing what they
// received, or spans; and a caller's key crosses the bus only as a hash.
//
// Covered elsewhere (not repeated here):
//   - TestRegistryAPI (registry_api_test.go): create/get/list/update answers
//     redact url userinfo and query, auth_value and static header values;
//     TestRegistryAPIStdioAllowed: env values of a stdio record.
//   - TestUpstreamSeesOnlyTheConfiguredCredential, TestOAuth2AcrossReplicas,
//     TestSigV4ReachesUpstreamSigned, TestPerRequestCredentials: logs of
//     successful calls hold no auth_value, client_secret, token or AWS secret.
//   - TestKeyRequired: a 401 body never echoes the presented key.
//   - TestTracingOneTraceAcrossHops: span attributes of a successful call hold
//     neither the master key nor the arguments.
//   - TestUsageEventsThroughGateway: a virtual key is not in its usage events.
//   - The suite-wide scan (scan_test.go) checks every recorded body and log
//     for every registered secret.
//   - Unit level: config TestNoSecretInErrors/TestNoSecretInParseErrors,
//     bus TestRedactedHidesEveryCredential, toolworkers
//     TestStreamableErrorsDoNotLeakURLSecrets, TestSSEErrorKindsDoNotLeakURL,
//     TestSigV4SecretNeverLeaks, TestOAuthTokenEndpointRejectsClient,
//     ingress TestAdminNeverLogsKeys.
// Added here: every credential kind at once on upstreams that fail (401, 403,
// 500, a token endpoint that refuses, each echoing every header and secret
// it received), through /mcp/{server}, /mcp-rest/tools/call, /v1/mcp/tools
// and /v1/mcp/server/health, checked in the answers, the debug logs, the
// /metrics text, the usage subjects, the spans; registry GET answers for
// oauth2 and aws records; POST/PUT error answers for bodies full of secrets;
// the bus carrying no caller key in plaintext.

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// heldEcho answers every request with status, and echoes everything it
// received (every header, the body) in its answer body and in a
// WWW-Authenticate header, as careless servers do.
func heldEcho(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var sb strings.Builder
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(&sb, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
		}
		fmt.Fprintf(&sb, "url: %s\nbody: %s\n", r.URL, body)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", received="`+strings.ReplaceAll(r.Header.Get("Authorization"), `"`, "")+`"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"denied","echo":%q}`, sb.String())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// heldSecrets are credentials the failing-upstream gateway's config reads
// through os.environ/ (stored as references, resolved by the workers).
var heldSecrets = map[string]string{
	"S_BEARER": "bearer-auth-value-held-1",
	"S_STATIC": "static-header-value-held-2",
	"S_APIKEY": "api-key-value-held-3",
	"S_BASIC":  "alice:basic-pw-held-4",
	"S_CLIENT": "oauth-client-secret-held-5",
}

// heldLiterals are credentials written into the config file as they are
// (stored so in the servers bucket, so only redaction keeps them out of
// registry answers).
var heldLiterals = map[string]string{
	"ok_auth":       "bearer-literal-held-6",
	"ok_static":     "static-literal-held-7",
	"oauth_secret":  "oauth-secret-literal-held-8",
	"aws_akid":      "AKIDLITERALHELD20",
	"aws_secret":    "aws-secret-literal-held-21",
	"aws_session":   "aws-session-literal-held-22",
	"posted_secret": "posted-client-secret-held-23",
	"posted_query":  "posted-token-url-held-24",
	"posted_akid":   "AKIDPOSTEDHELD25",
	"posted_aws":    "posted-aws-secret-held-26",
	"posted_sess":   "posted-aws-session-held-27",
	"posted_static": "posted-static-held-28",
}

// Secrets in the 403 server's URL (userinfo and query), and the access
// token the test's token endpoint issues.
const (
	heldURLUser  = "url-userinfo-pw-held-9"
	heldURLQuery = "url-query-token-held-10"
	heldToken    = "oauth-access-token-held-11"
)

func TestSecurityHeldSecretsFailingUpstreams(t *testing.T) {
	exp, traced := withTracing(t)
	// A token endpoint that refuses (echoing the client secret it got), and
	// one that issues heldToken to an upstream that then answers 403.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, secret, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":"bad secret %s%s"}`, secret, r.Form.Get("client_secret"))
	}))
	t.Cleanup(refusing.Close)
	issuing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, heldToken)
	}))
	t.Cleanup(issuing.Close)
	okURL, _ := heldHTTPUpstream(t, "ok")
	u403, _ := url.Parse(heldEcho(t, http.StatusForbidden))
	u403.User = url.UserPassword("alice", heldURLUser)
	u403.RawQuery = "token=" + heldURLQuery

	env := map[string]string{"MASTER": master}
	for k, v := range heldSecrets {
		env[k] = v
	}
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings: {master_key: os.environ/MASTER}
mcp_servers:
  ok: {url: %q, auth_type: bearer_token, auth_value: %s, static_headers: {X-Static: %s}}
  deny401: {url: %q, circuit_breaker_threshold: 1000, auth_type: bearer_token, auth_value: os.environ/S_BEARER, static_headers: {X-Static: os.environ/S_STATIC}}
  deny403: {url: %q, circuit_breaker_threshold: 1000, auth_type: api_key, auth_value: os.environ/S_APIKEY}
  boom500: {url: %q, circuit_breaker_threshold: 1000, auth_type: basic, auth_value: os.environ/S_BASIC}
  oauthbad: {url: %q, circuit_breaker_threshold: 1000, auth_type: oauth2, token_url: %q, client_id: held, client_secret: os.environ/S_CLIENT}
  oauth403: {url: %q, circuit_breaker_threshold: 1000, auth_type: oauth2, token_url: %q, client_id: held, client_secret: %s}
  aws: {url: %q, circuit_breaker_threshold: 1000, auth_type: aws_sigv4, aws_access_key_id: %s, aws_secret_access_key: %s,
        aws_session_token: %s, aws_region_name: eu-west-1, aws_service_name: execute-api}
`, okURL, heldLiterals["ok_auth"], heldLiterals["ok_static"], heldEcho(t, http.StatusUnauthorized), u403.String(), heldEcho(t, http.StatusInternalServerError),
		heldEcho(t, http.StatusOK), refusing.URL, heldEcho(t, http.StatusForbidden), issuing.URL, heldLiterals["oauth_secret"],
		heldEcho(t, http.StatusForbidden), heldLiterals["aws_akid"], heldLiterals["aws_secret"], heldLiterals["aws_session"]), env, traced)
	usage := heldTapBus(t, g, "mcpbus.v1.usage.>")
	virtual := generateKey(t, g.URL(), map[string]any{"key_alias": "held-secrets"})
	guesses := []string{"sk-guessed-key-held-12", "sk-another-guess-held-13"}
	secrets := []string{master, virtual, heldURLUser, heldURLQuery, heldToken,
		base64.StdEncoding.EncodeToString([]byte(heldSecrets["S_BASIC"]))}
	secrets = append(secrets, guesses...)
	for _, v := range heldSecrets {
		secrets = append(secrets, v)
	}
	for _, v := range heldLiterals {
		secrets = append(secrets, v)
	}
	registerSecret(secrets...)

	var answers strings.Builder
	keep := func(what string, r rawResponse) rawResponse {
		fmt.Fprintf(&answers, "%s: HTTP %d %v %s\n", what, r.status, r.header, r.body)
		return r
	}
	base := g.URL()
	failing := map[string]string{ // server -> the catalog code its calls fail with
		"deny401": "MCPBUS_UPSTREAM_AUTH", "deny403": "MCPBUS_UPSTREAM_AUTH", "boom500": "MCPBUS_UPSTREAM_PROTOCOL",
		"oauthbad": "MCPBUS_UPSTREAM_AUTH", "oauth403": "MCPBUS_UPSTREAM_AUTH", "aws": "MCPBUS_UPSTREAM_AUTH",
	}
	for _, key := range []string{master, virtual} {
		for _, server := range []string{"ok", "deny401", "deny403", "boom500", "oauthbad", "oauth403", "aws"} {
			url := base + "/mcp/" + server
			s := initSession(t, url, bearer(key))
			for i, body := range []string{rpc("tools/list", 2, ""), rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"x"}}`)} {
				r := keep(server, post(t, url, s, body))
				want := failing[server]
				if got := r.rpcErr.Data["mcpbus_code"]; want != "" && got != want || want == "" && r.rpcErr.Code != 0 {
					t.Errorf("%s request %d: %s, want %q", server, i, r.body, want)
				}
			}
			r := keep("rest call "+server, heldDo(t, "POST", base+"/mcp-rest/tools/call", bearer(key),
				fmt.Sprintf(`{"server_id":%q,"name":"echo","arguments":{"text":"x"}}`, server)))
			if code, _ := heldRESTError(r.body); failing[server] != "" && code != failing[server] {
				t.Errorf("REST call on %s: HTTP %d %s", server, r.status, r.body)
			}
		}
		for _, path := range []string{"/v1/mcp/tools", "/mcp-rest/tools/list", "/v1/mcp/server/health"} {
			keep(path, heldDo(t, "GET", base+path, bearer(key), ""))
		}
	}
	for _, guess := range guesses {
		for _, h := range []http.Header{bearer(guess), {"X-Litellm-Api-Key": {guess}}} {
			if r := keep("guess", post(t, base+"/mcp/ok", h, initBody)); r.status != http.StatusUnauthorized {
				t.Errorf("a guessed key: HTTP %d %s", r.status, r.body)
			}
			keep("guess admin", heldDo(t, "GET", base+"/key/list", h, ""))
		}
	}

	// Registry answers: records written through the API with literal
	// credentials, reads of every record, and writes refused for a reason
	// while their bodies are full of secrets.
	asMaster := http.Header{"Authorization": {"Bearer " + master}, "Content-Type": {"application/json"}}
	for _, body := range []string{
		fmt.Sprintf(`{"server_name":"posted-oauth","url":"http://127.0.0.1:1/mcp","auth_type":"oauth2","client_id":"c","client_secret":%q,
			"token_url":"http://127.0.0.1:1/token?key=%s","static_headers":{"X-Posted":%q}}`, heldLiterals["posted_secret"], heldLiterals["posted_query"], heldLiterals["posted_static"]),
		fmt.Sprintf(`{"server_name":"posted-aws","url":"http://127.0.0.1:1/mcp","auth_type":"aws_sigv4","aws_access_key_id":%q,"aws_secret_access_key":%q,
			"aws_session_token":%q,"aws_region_name":"eu-west-1","aws_service_name":"execute-api"}`, heldLiterals["posted_akid"], heldLiterals["posted_aws"], heldLiterals["posted_sess"]),
	} {
		if r := keep("create", heldDo(t, "POST", base+"/v1/mcp/server", asMaster, body)); r.status != http.StatusOK {
			t.Fatalf("POST /v1/mcp/server: HTTP %d %s", r.status, r.body)
		}
	}
	keep("list", heldDo(t, "GET", base+"/v1/mcp/server", bearer(master), ""))
	for _, server := range []string{"ok", "deny401", "deny403", "boom500", "oauthbad", "oauth403", "aws", "posted-oauth", "posted-aws"} {
		r := keep("get "+server, heldDo(t, "GET", base+"/v1/mcp/server/"+server, bearer(master), ""))
		if r.status != http.StatusOK {
			t.Errorf("GET /v1/mcp/server/%s: HTTP %d %s", server, r.status, r.body)
		}
	}
	written := []string{"write-secret-held-14", "write-secret-held-15", "write-secret-held-16", "write-secret-held-17", "write-secret-held-18"}
	registerSecret(written...)
	secrets = append(secrets, written...)
	for _, w := range []struct{ method, body string }{
		{"POST", `{"server_name":"bad1","url":"ftp://u:` + written[0] + `@127.0.0.1/x?token=` + written[1] + `"}`},
		{"POST", `{"server_name":"bad2","url":"http://127.0.0.1:1/mcp","auth_type":"api_key","auth_value":"` + written[2] + `\n"}`},
		{"POST", `{"server_name":"bad3","url":"http://127.0.0.1:1/mcp","static_headers":{"Bad Header":"` + written[3] + `"}}`},
		{"POST", `{"server_name":"bad4","url":"http://127.0.0.1:1/mcp","auth_type":"oauth2","client_secret":"` + written[4] + `"}`},
		{"POST", `{"server_name":"bad5","url":"http://127.0.0.1:1/mcp","auth_type":"aws_sigv4","aws_secret_access_key":"` + written[4] + `"}`},
		{"POST", `{"server_name":"deny401","url":"http://127.0.0.1:1/mcp","auth_value":"` + written[2] + `"}`},
		{"POST", `{"server_name":"bad6","url":"http://127.0.0.1:1/mcp","auth_type":"bearer_token","auth_value":["` + written[2] + `"]}`},
		{"PUT", `{"server_id":"deny401","url":"notaurl?token=` + written[1] + `"}`},
		{"PUT", `{"server_id":"deny401","static_headers":{"X-Static":"` + written[3] + `\r\nX-Injected: 1"}}`},
		{"PUT", `{"server_id":"nope","auth_value":"` + written[2] + `"}`},
	} {
		r := keep("write", heldDo(t, w.method, base+"/v1/mcp/server", asMaster, w.body))
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s %.80s: HTTP %d %s, want a refusal", w.method, w.body, r.status, r.body)
		}
	}
	// The records still hold the configured values: nothing above was stored.
	if s, ok := storedServer(t, g, "deny401"); !ok || s.URL == "" || strings.Contains(s.URL, "notaurl") {
		t.Errorf("a refused PUT changed deny401: %v", s.URL)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(metrics), `server="deny401"`) {
		t.Fatalf("/metrics: HTTP %d, or no series for the failing server", resp.StatusCode)
	}
	usageText := usage.text()
	if usage.count("mcpbus.v1.usage.") == 0 {
		t.Fatal("no usage event was published: the usage check saw nothing")
	}
	spans := heldSpanText(exp)
	if !strings.Contains(spans, "upstream deny401 tools/call") {
		t.Fatalf("no upstream span for the failing server: the span check saw nothing")
	}
	var leaks []string
	leaks = append(leaks, heldFind("an HTTP answer", answers.String(), secrets...)...)
	leaks = append(leaks, heldFind("the debug log", g.logs.String(), secrets...)...)
	leaks = append(leaks, heldFind("/metrics", string(metrics), secrets...)...)
	leaks = append(leaks, heldFind("a usage event", usageText, secrets...)...)
	leaks = append(leaks, heldFind("a span", spans, secrets...)...)
	for _, l := range leaks {
		t.Error(l)
	}
}

// A caller's key crosses the bus only as its SHA-256: whatever route, spelling
// or selection, no subject, header or payload on any subject holds it.
func TestSecurityHeldSecretsCallerKeyOnlyHashedOnTheBus(t *testing.T) {
	rig := heldKeyGateway(t)
	all := heldTapBus(t, rig.g, ">")
	base := rig.g.URL()
	for _, key := range rig.keys {
		for _, sp := range heldKeySpellings(key) {
			s := initSession(t, base+"/mcp/web", sp.header)
			if r := post(t, base+"/mcp/web", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"x"}}`)); r.rpcErr.Code != 0 {
				t.Fatalf("%s: %s", sp.name, r.body)
			}
			s = initSession(t, base+"/mcp", sp.header)
			post(t, base+"/mcp", s, rpc("tools/list", 3, ""))
			h := sp.header.Clone()
			h.Set("Content-Type", "application/json")
			heldDo(t, "POST", base+"/mcp-rest/tools/call", h, `{"server_id":"legacy","name":"echo","arguments":{"text":"x"}}`)
			heldDo(t, "GET", base+"/v1/mcp/server/health", sp.header, "")
			heldDo(t, "GET", base+"/key/list", sp.header, "")
			heldDo(t, "GET", base+"/v1/mcp/server", sp.header, "")
			heldDo(t, "GET", base+"/metrics", sp.header, "")
		}
	}
	text := all.text()
	if !strings.Contains(text, "mcpbus.v1.auth.verify") || !strings.Contains(text, "mcpbus.v1.tool.web.rpc") {
		t.Fatal("the bus tap saw no verify or worker traffic")
	}
	for name, key := range rig.keys {
		if strings.Contains(text, key) {
			t.Errorf("the %s key crossed the bus in plaintext", name)
		}
	}
}
