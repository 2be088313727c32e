package ingress

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The browser's half of a per-user upstream sign-in (auth_type oauth2,
// oauth2_flow authorization_code; bus/useroauth.go):
//
//	GET /oauth/authorize/{server}?ticket=...   the link a -32042 answer gave
//	GET /oauth/callback?state=...&code=...     where the provider sends the browser back
//
// Neither takes a gateway key: the ticket (one-time, 10 minutes) stands
// for the user who was asked to sign in, and the state for the sign-in in
// progress. Both are checked here (bus.Validate) and relayed to the
// server's workers, which hold its client secret and do the rest; the
// callback finds them by the server name the state carries. Answers are
// small HTML pages that say what happened, never a token; the query is
// never logged. Route family mcp (routes.go).

const (
	// UpstreamAuthorizePath is followed by the server's name.
	UpstreamAuthorizePath = "/oauth/authorize/"
	// UpstreamCallbackPath is the redirect URI to register at each
	// per-user server's provider: <public URL>/oauth/callback.
	UpstreamCallbackPath = "/oauth/callback"
)

func (g *Ingress) upstreamOAuthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+UpstreamAuthorizePath+"{server}", g.serveUpstreamAuthorize)
	mux.HandleFunc("POST "+UpstreamAuthorizePath+"{server}", g.serveUpstreamAuthorize) // the confirmation
	mux.HandleFunc("GET "+UpstreamCallbackPath, g.serveUpstreamCallback)
}

func (g *Ingress) serveUpstreamAuthorize(w http.ResponseWriter, r *http.Request) {
	server := r.PathValue("server")
	if !bus.ValidToken(server) {
		flowPage(w, http.StatusNotFound, "Sign-in failed", "There is no such MCP server.")
		return
	}
	in := bus.OAuthStart{Ticket: r.URL.Query().Get("ticket")}
	if r.Method == http.MethodPost {
		// The confirmation page's form, from this browser only: its nonce
		// is also in a SameSite=Strict cookie, which a page elsewhere
		// posting the form cannot send.
		in.Ticket = r.PostFormValue("ticket")
		ck, err := r.Cookie(confirmCookie)
		if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostFormValue("nonce"))) != 1 {
			flowPage(w, http.StatusBadRequest, "Sign-in failed", "This confirmation did not come from the page this gateway showed: open the sign-in link again.")
			return
		}
		in.Confirm = true
	}
	// A browser signed in to the gateway (a UI session) is that user: the
	// worker refuses a link made for anyone else.
	if _, rec, ok := g.uiSessionOf(r); ok {
		if id, e := g.verifySession(r.Context(), rec); e == nil {
			in.User, in.Confirm = id.UserKey(), true
		}
	}
	if e := in.Validate(); e != nil {
		flowPage(w, http.StatusBadRequest, "Sign-in failed", e.Message)
		return
	}
	var out bus.OAuthStartAnswer
	if !g.flowRequest(w, r, bus.ToolOAuthStart(server), server, in, &out) {
		return
	}
	if out.Account != "" {
		g.confirmPage(w, r, server, in.Ticket, out.Account)
		return
	}
	if out.Redirect == "" {
		flowPage(w, http.StatusBadGateway, "Sign-in failed", "The gateway could not start the sign-in.")
		return
	}
	noStore(w)
	http.Redirect(w, r, out.Redirect, http.StatusFound)
}

func (g *Ingress) serveUpstreamCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	in := bus.OAuthFinish{State: q.Get("state"), Code: q.Get("code"), Iss: q.Get("iss"), Error: q.Get("error"),
		ErrorDescription: q.Get("error_description")}
	if e := in.Validate(); e != nil {
		flowPage(w, http.StatusBadRequest, "Sign-in failed", e.Message)
		return
	}
	server, _ := bus.FlowStateServer(in.State)
	var out bus.OAuthFinishAnswer
	if !g.flowRequest(w, r, bus.ToolOAuthFinish(server), server, in, &out) {
		return
	}
	flowPage(w, http.StatusOK, "Connected "+out.Server, "You are signed in to MCP server '"+out.Server+"' through the gateway. You can close this window and call its tools again.")
}

// flowRequest asks server's workers and reads their answer into out; on
// failure it writes the error page and returns false.
func (g *Ingress) flowRequest(w http.ResponseWriter, r *http.Request, subject, server string, in, out any) bool {
	data, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			flowPage(w, http.StatusNotFound, "Sign-in failed", "MCP server '"+server+"' does not sign users in, or is not running.")
			return false
		}
		g.log.Warn("sign-in request failed", "server", server, "request_id", requestID(r), "err", bus.RequestError("tool worker", err).Message)
		flowPage(w, http.StatusServiceUnavailable, "Sign-in failed", "The gateway could not reach MCP server '"+server+"'; try again.")
		return false
	}
	if e := bus.ReplyError(reply); e != nil {
		status := e.Kind.REST
		if status == 0 || status == http.StatusOK {
			status = http.StatusBadRequest
		}
		g.log.Info("sign-in refused", "server", server, "request_id", requestID(r), "code", e.Kind.Code)
		flowPage(w, status, "Sign-in failed", e.Message)
		return false
	}
	if json.Unmarshal(reply.Data, out) != nil {
		flowPage(w, http.StatusBadGateway, "Sign-in failed", "MCP server '"+server+"' answered something unreadable.")
		return false
	}
	return true
}

// confirmCookie holds the confirmation page's nonce.
const confirmCookie = "mcpbus_oauth_confirm"

// confirmPage asks the browser's user to confirm the account a link was
// made for before anything is consumed: whoever signs in next gives that
// account their access at the provider, so a link sent by someone else
// must be recognised as theirs.
func (g *Ingress) confirmPage(w http.ResponseWriter, r *http.Request, server, ticket, account string) {
	nonce := randomToken()
	http.SetCookie(w, &http.Cookie{Name: confirmCookie, Value: nonce, Path: UpstreamAuthorizePath, MaxAge: int(bus.OAuthFlowTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || g.forwardedHTTPS(r)})
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	esc := html.EscapeString
	_, _ = w.Write([]byte("<!doctype html><html><head><meta charset=\"utf-8\"><title>Connect " + esc(server) +
		"</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Connect " + esc(server) + "</h1>" +
		"<p>This link connects MCP server '" + esc(server) + "' for the mcpbus account <strong>" + esc(account) + "</strong>: " +
		"the account you sign in with next is used for that mcpbus account's calls.</p>" +
		"<p>Continue only if that is you and you just asked for it. If someone sent you this link, close this page.</p>" +
		"<form method=\"post\" action=\"" + esc(url.PathEscape(server)) + "\"><input type=\"hidden\" name=\"ticket\" value=\"" + esc(ticket) +
		"\"><input type=\"hidden\" name=\"nonce\" value=\"" + esc(nonce) + "\"><button type=\"submit\">Continue to sign in</button></form></body></html>\n"))
}

// noStore keeps a page (or a redirect carrying a ticket or code) out of
// caches and Referer headers.
func noStore(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
}

// flowPage writes a small HTML page.
func flowPage(w http.ResponseWriter, status int, title, text string) {
	noStore(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.EscapeString(title) +
		"</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>" + html.EscapeString(title) +
		"</h1><p>" + html.EscapeString(text) + "</p></body></html>\n"))
}
