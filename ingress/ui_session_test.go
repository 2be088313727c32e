package ingress

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// uiDo sends one request to g as an internal caller, with cookie and CSRF
// token when given.
func uiDo(g *Ingress, method, path, cookie, csrf, body string) *httptest.ResponseRecorder {
	h := http.Header{}
	if cookie != "" {
		h.Set("Cookie", bus.UISessionCookie+"="+cookie)
	}
	if csrf != "" {
		h.Set(bus.UICSRFHeader, csrf)
	}
	return serve(g, method, path, "10.1.2.3:5555", h, body)
}

// signIn signs in with key and returns the session cookie and CSRF token.
func signIn(t *testing.T, g *Ingress, key string) (cookie, csrf string) {
	t.Helper()
	w := uiDo(g, http.MethodPost, "/ui/api/session", "", "", `{"key":"`+key+`"}`)
	if w.Code != http.StatusOK {
		t.Fatalf("sign in: HTTP %d %s", w.Code, w.Body)
	}
	var c *http.Cookie
	for _, ck := range w.Result().Cookies() {
		if ck.Name == bus.UISessionCookie {
			c = ck
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge <= 0 || len(c.Value) != 64 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, a lifetime and a 256-bit id", c)
	}
	if strings.Contains(w.Body.String(), key) || strings.Contains(w.Header().Get("Set-Cookie"), key) {
		t.Fatal("the sign-in answer holds the key")
	}
	var ans uiSessionAnswer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || len(ans.CSRF) != 64 {
		t.Fatalf("sign-in answer %s", w.Body)
	}
	return c.Value, ans.CSRF
}

func TestUIAssetsAndHeaders(t *testing.T) {
	g := metricsIngress(t, Options{})
	for path, ctype := range map[string]string{"/ui": "text/html", "/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/app.css": "text/css"} {
		w := uiDo(g, http.MethodGet, path, "", "", "")
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) {
			t.Errorf("GET %s: HTTP %d %q", path, w.Code, w.Header().Get("Content-Type"))
		}
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows unsafe sources", path, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: headers %v", path, w.Header())
		}
	}
	for _, path := range []string{"/ui/nothing.js", "/ui/../ingress.go", "/ui/%2e%2e/ingress.go", "/ui/..%2fui.go"} {
		if w := uiDo(g, http.MethodGet, path, "", "", ""); w.Code == http.StatusOK || strings.Contains(w.Body.String(), "package ") {
			t.Errorf("GET %s: HTTP %d %.80s, want no file", path, w.Code, w.Body)
		}
	}
	// The UI is internal by default, as every family but MCP.
	if w := serve(g, http.MethodGet, "/ui", "203.0.113.9:1", nil, ""); w.Code != http.StatusForbidden {
		t.Errorf("external GET /ui: HTTP %d, want 403", w.Code)
	}
}

// Sign-in makes a session the cookie carries; a change needs the CSRF
// token; sign-out ends the session; MCP's transports ignore the cookie.
func TestUISessionCookieAndCSRF(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	g := metricsIngress(t, Options{NC: nc})

	if w := uiDo(g, http.MethodPost, "/ui/api/session", "", "", `{"key":"sk-wrong"}`); w.Code != http.StatusUnauthorized {
		t.Fatalf("sign in with a bad key: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(g, http.MethodPost, "/ui/api/session", "", "", `{}`); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `{\"key\"`) {
		t.Fatalf("sign in without a key: HTTP %d %s", w.Code, w.Body)
	}
	cookie, csrf := signIn(t, g, testUserKey)

	w := uiDo(g, http.MethodGet, "/ui/api/session", cookie, "", "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"csrf":"`+csrf+`"`) {
		t.Fatalf("GET session: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(g, http.MethodGet, "/ui/api/session", strings.Repeat("0", 64), "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("GET session with a made-up cookie: HTTP %d", w.Code)
	}
	// The cookie is not a credential on MCP's transports.
	if w := uiDo(g, http.MethodPost, "/mcp", cookie, csrf, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); w.Code != http.StatusUnauthorized {
		t.Fatalf("/mcp with only the UI cookie: HTTP %d %s; want 401", w.Code, w.Body)
	}
	// A change without the token, or with another, is refused.
	for _, bad := range []string{"", strings.Repeat("a", 64)} {
		w := uiDo(g, http.MethodDelete, "/ui/api/session", cookie, bad, "")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "CSRF token is missing or wrong") {
			t.Fatalf("sign out with CSRF %q: HTTP %d %s", bad, w.Code, w.Body)
		}
	}
	if w := uiDo(g, http.MethodPost, "/key/generate", cookie, "", `{}`); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "CSRF") {
		t.Fatalf("/key/generate with the cookie and no CSRF token: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(g, http.MethodDelete, "/ui/api/session", cookie, csrf, ""); w.Code != http.StatusNoContent {
		t.Fatalf("sign out: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(g, http.MethodGet, "/ui/api/session", cookie, "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("GET session after sign-out: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(g, http.MethodGet, "/key/list", cookie, "", ""); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "sign in again") {
		t.Fatalf("/key/list with an ended session: HTTP %d %s", w.Code, w.Body)
	}
}

// With JetStream, a session signed in on one replica works on another,
// and signing out on either ends it on both.
func TestUISessionsAreSharedByReplicas(t *testing.T) {
	ns := bustest.Server(t)
	svc := bustest.Conn(t, ns)
	fakeVerify(t, svc)
	if err := svc.Flush(); err != nil {
		t.Fatal(err)
	}
	replica := func() *Ingress {
		nc := bustest.Conn(t, ns)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		// The UI alone: the test server has no room for the MCP
		// sessions bucket beside this one.
		g := metricsIngress(t, Options{NC: nc, JetStream: js, Routes: []bus.RouteFamily{bus.RoutesUI}})
		if g.uiSessions.kv == nil {
			t.Fatal("no UI sessions bucket")
		}
		return g
	}
	a, b := replica(), replica()
	cookie, csrf := signIn(t, a, testMasterKey)
	if w := uiDo(b, http.MethodGet, "/ui/api/session", cookie, "", ""); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"admin":true`) {
		t.Fatalf("the other replica: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(b, http.MethodDelete, "/ui/api/session", cookie, csrf, ""); w.Code != http.StatusNoContent {
		t.Fatalf("sign out on the other replica: HTTP %d %s", w.Code, w.Body)
	}
	if w := uiDo(a, http.MethodGet, "/ui/api/session", cookie, "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("the first replica after sign-out: HTTP %d %s", w.Code, w.Body)
	}
}

// The session cookie is Secure when the sign-in came over TLS, or through
// a trusted proxy that says https; not on plain HTTP.
func TestUISessionCookieSecureUnderTLS(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	g := metricsIngress(t, Options{NC: nc, UseXFF: true, TrustedProxies: prefixes("10.0.0.0/8")})
	secure := func(target string, h http.Header) bool {
		r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{"key":"`+testUserKey+`"}`))
		r.RemoteAddr = "10.1.2.3:5555"
		for k, v := range h {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		g.Handler().ServeHTTP(w, r)
		for _, c := range w.Result().Cookies() {
			if c.Name == bus.UISessionCookie {
				return c.Secure
			}
		}
		t.Fatalf("%s: no session cookie: HTTP %d %s", target, w.Code, w.Body)
		return false
	}
	inside := http.Header{"X-Forwarded-For": {"10.9.9.9"}}
	if secure("http://gw.internal/ui/api/session", inside) {
		t.Error("Secure over plain HTTP: the browser would drop it")
	}
	if !secure("https://gw.internal/ui/api/session", inside) {
		t.Error("not Secure over TLS")
	}
	if !secure("http://gw.internal/ui/api/session", http.Header{"X-Forwarded-For": {"10.9.9.9"}, "X-Forwarded-Proto": {"https"}}) {
		t.Error("not Secure behind a trusted proxy that terminated TLS")
	}
}
