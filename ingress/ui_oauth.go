package ingress

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nats.go/jetstream"
)

// The UI's "Sign in with <provider>" (general_settings.mcp_oauth.ui_sign_in):
// the ingress runs the authorization-code flow with PKCE as the
// provider's client, asks for a token for this gateway (mcp_oauth.resource)
// and checks it exactly as a token sent to /mcp is checked, so the UI
// session is what the same user gets through MCP: its team's servers, its
// usage. The flow's state and PKCE verifier wait in the UI sessions bucket
// (any replica may receive the callback), bound to a cookie of the browser
// that started it, so a callback from another browser (login CSRF) is
// refused.

// UISignIn is the provider's client the UI signs users in with.
type UISignIn struct {
	ClientID, ClientSecret string
	// Issuer is the provider; Scopes are asked for (default openid email).
	Issuer string
	Scopes []string
}

const (
	uiLoginPath    = "/ui/oauth/login"
	uiCallbackPath = "/ui/oauth/callback"
	// uiFlowCookie binds a flow to the browser that started it. SameSite
	// Lax: it must come back on the provider's top-level redirect.
	uiFlowCookie = "mcpbus_ui_flow"
)

// uiFlow is a sign-in between the redirect out and the callback.
type uiFlow struct {
	Pending oauth.Pending `json:"pending"`
	// Browser is the hash of the flow cookie's value.
	Browser string `json:"browser"`
}

// uiProvider is the provider's client, made from its metadata on first
// use (and again after a failure).
type uiProvider struct {
	mu     sync.Mutex
	client *oauth.Client
}

func (g *Ingress) uiOAuthClient(ctx context.Context) (oauth.Client, error) {
	o := g.oauth
	p := &o.uiProvider
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return *p.client, nil
	}
	md, err := oauth.DiscoverMetadata(ctx, o.HTTPClient, o.UISignIn.Issuer)
	if err != nil {
		return oauth.Client{}, err
	}
	c, err := oauth.ClientFromMetadata(md)
	if err != nil {
		return oauth.Client{}, err
	}
	c.ClientID, c.ClientSecret = o.UISignIn.ClientID, o.UISignIn.ClientSecret
	c.RedirectURI = o.origin + o.basePath + uiCallbackPath
	c.Scopes = o.UISignIn.Scopes
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "email"}
	}
	c.Resource = o.Resource
	c.HTTP = o.HTTPClient
	p.client = &c
	return c, nil
}

// uiSignInMethods tells the sign-in page what besides a key it may offer.
func (g *Ingress) uiSignInMethods(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{}
	if g.oauth != nil && g.oauth.UISignIn != nil {
		provider := g.oauth.UISignIn.Issuer
		if u, err := url.Parse(provider); err == nil && u.Host != "" {
			provider = u.Host
		}
		out["oauth"] = map[string]string{"provider": provider, "url": uiLoginPath}
	}
	body, _ := json.Marshal(out)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// uiOAuthLogin starts a sign-in: the flow kept, the browser bound, and
// off to the provider.
func (g *Ingress) uiOAuthLogin(w http.ResponseWriter, r *http.Request) {
	if g.oauth == nil || g.oauth.UISignIn == nil {
		uiOAuthPage(w, http.StatusNotFound, "This gateway has no sign-in with an identity provider (general_settings.mcp_oauth.ui_sign_in); sign in with a key.")
		return
	}
	c, err := g.uiOAuthClient(r.Context())
	if err != nil {
		g.log.Warn("UI sign-in: the identity provider's metadata cannot be read", "issuer", g.oauth.UISignIn.Issuer, "err", err)
		uiOAuthPage(w, http.StatusBadGateway, "The identity provider cannot be reached now: "+err.Error())
		return
	}
	browser := randomToken()
	flow := uiFlow{Pending: oauth.NewPending(g.uiSessions.now()), Browser: hashHex(browser)}
	if err := g.uiSessions.putFlow(r.Context(), flow); err != nil {
		uiOAuthPage(w, http.StatusServiceUnavailable, "The sign-in cannot be kept now; try again shortly.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: uiFlowCookie, Value: browser, Path: "/ui/oauth/", MaxAge: int(oauth.PendingTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || g.forwardedHTTPS(r)})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, c.AuthorizeURL(flow.Pending), http.StatusFound)
}

// uiOAuthCallback finishes a sign-in: the flow found and taken (once),
// the browser the one that started it, the provider the one it went to
// (RFC 9207), the code exchanged, and the token checked as any bearer
// token is; then a UI session, and back to the UI.
func (g *Ingress) uiOAuthCallback(w http.ResponseWriter, r *http.Request) {
	if g.oauth == nil || g.oauth.UISignIn == nil {
		uiOAuthPage(w, http.StatusNotFound, "This gateway has no sign-in with an identity provider.")
		return
	}
	q := r.URL.Query()
	flow, ok := g.uiSessions.takeFlow(r.Context(), q.Get("state"))
	ck, err := r.Cookie(uiFlowCookie)
	http.SetCookie(w, &http.Cookie{Name: uiFlowCookie, Value: "", Path: "/ui/oauth/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	switch {
	case !ok:
		uiOAuthPage(w, http.StatusBadRequest, "This sign-in is unknown, finished or expired: start again from the sign-in page.")
		return
	case err != nil || subtle.ConstantTimeCompare([]byte(hashHex(ck.Value)), []byte(flow.Browser)) != 1:
		g.log.Warn("UI sign-in refused: the callback came to another browser than the one that started it", "request_id", requestID(r))
		uiOAuthPage(w, http.StatusBadRequest, "This sign-in was started in another browser: start again from the sign-in page.")
		return
	}
	c, err := g.uiOAuthClient(r.Context())
	if err != nil {
		uiOAuthPage(w, http.StatusBadGateway, "The identity provider cannot be reached now: "+err.Error())
		return
	}
	now := g.uiSessions.now()
	tok, err := c.Finish(r.Context(), flow.Pending, q, now)
	if err != nil {
		g.log.Info("UI sign-in refused", "request_id", requestID(r), "reason", err.Error())
		uiOAuthPage(w, http.StatusBadRequest, "Sign-in refused: "+err.Error())
		return
	}
	claims, oe := g.oauth.Validator.Validate(r.Context(), tok.AccessToken)
	var caller bus.OAuthCaller
	if oe == nil {
		caller, oe = g.oauth.Validator.Caller(claims, g.oauth.TeamIDDefault)
	}
	if oe != nil {
		uiOAuthPage(w, http.StatusBadRequest, "The identity provider's token is not one this gateway accepts: "+oe.Description)
		return
	}
	id, e := g.askAuth(r.Context(), bus.VerifyRequest{OAuth: &caller})
	if e != nil {
		g.log.Info("UI sign-in refused", "request_id", requestID(r), "code", e.Kind.Code)
		uiOAuthPage(w, e.Status(false), e.Message)
		return
	}
	// The session keeps who the token proved, with the team auth chose,
	// and lasts no longer than the token.
	caller.Teams = []string{id.Team}
	rec := bus.UISession{OAuth: &caller, CSRF: randomToken(), Expires: now.Add(bus.UISessionTTL)}
	if caller.Expires.Before(rec.Expires) {
		rec.Expires = caller.Expires
	}
	sid := randomToken()
	if err := g.uiSessions.put(r.Context(), sid, rec); err != nil {
		uiOAuthPage(w, http.StatusServiceUnavailable, "The UI session cannot be kept now; try again shortly.")
		return
	}
	http.SetCookie(w, g.uiCookie(r, sid, int(time.Until(rec.Expires)/time.Second)))
	g.log.Info("UI sign-in", "request_id", requestID(r), "caller", id.Name(), "with", "oauth")
	// A page, not a redirect: the session cookie is SameSite=Strict, so it
	// is sent from the next same-site navigation, not on a redirect chain
	// the provider started.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=../../ui/"><title>Signed in · mcpbus</title>` +
		`<p>Signed in as ` + html.EscapeString(id.Name()) + `. <a href="../../ui/">Open mcpbus</a>.</p>`))
}

// uiOAuthPage answers a sign-in step that cannot go on, in words.
func uiOAuthPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", uiCSP)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`<!doctype html><meta charset="utf-8"><title>Sign-in · mcpbus</title><p>` +
		html.EscapeString(msg) + `</p><p><a href="../../ui/">Back to the sign-in page</a></p>`))
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// flowKey is where a flow waits: under its state's hash.
func flowKey(state string) string { return "flow." + hashHex(state) }

func (s *uiSessions) putFlow(ctx context.Context, f uiFlow) error {
	data, _ := json.Marshal(f)
	if s.kv == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.flows[flowKey(f.Pending.State)] = data
		return nil
	}
	_, err := s.kv.Put(ctx, flowKey(f.Pending.State), data)
	return err
}

// takeFlow returns the flow of state and forgets it: a callback is
// answered once.
func (s *uiSessions) takeFlow(ctx context.Context, state string) (uiFlow, bool) {
	if state == "" || len(state) > 256 || strings.ContainsAny(state, "\r\n") {
		return uiFlow{}, false
	}
	k := flowKey(state)
	var data []byte
	if s.kv == nil {
		s.mu.Lock()
		data = s.flows[k]
		delete(s.flows, k)
		s.mu.Unlock()
	} else {
		e, err := s.kv.Get(ctx, k)
		if err != nil {
			return uiFlow{}, false
		}
		// Deleting at the revision read: of two callbacks racing, one wins.
		if err := s.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision())); err != nil {
			return uiFlow{}, false
		}
		data = e.Value()
	}
	var f uiFlow
	if data == nil || json.Unmarshal(data, &f) != nil || f.Pending.State != state {
		return uiFlow{}, false
	}
	return f, true
}
