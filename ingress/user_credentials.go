package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Per-user upstream credentials (bus/usercreds.go), in LiteLLM's shape, for
// any authenticated caller (a key, an OAuth user) about its own credentials;
// the master key may list and revoke anyone's (?user_id=):
//
//	POST|PUT /v1/mcp/server/{id}/user-credential   {"credential": "...", "expires_at"?: RFC 3339}
//	GET      /v1/mcp/server/{id}/user-credential   the caller's, for that server
//	DELETE   /v1/mcp/server/{id}/user-credential   revoke the caller's (?user_id=: that user's)
//	GET      /v1/mcp/server/{id}/user-credentials  master key: every user's for the server
//	GET      /v1/mcp/user-credentials              the caller's, every server (?user_id=)
//
// Answers describe credentials, never their tokens. The registry answers
// (it seals them and knows the servers) and checks again that the caller
// may use the server; the ingress checks the request's bounds (bus.Validate)
// before it publishes it. Route family mcp (routes.go).

func (g *Ingress) userCredentialRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server/{id}/user-credential", g.serveUserCredential)
	mux.HandleFunc("/v1/mcp/server/{id}/user-credentials", g.serveServerUserCredentials)
	mux.HandleFunc("/v1/mcp/user-credentials", g.serveUserCredentials)
	g.upstreamOAuthRoutes(mux) // oauth_upstream.go: the sign-in of per-user OAuth servers
}

const userCredShape = `{"credential": "<token>", "expires_at": "<RFC 3339, optional>"}`

func (g *Ingress) serveUserCredential(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodPost, http.MethodPut, http.MethodGet, http.MethodDelete) {
		return
	}
	server := r.PathValue("id")
	switch r.Method {
	case http.MethodGet:
		g.userCredRequest(w, r, bus.SubjectUserCredList, func() ([]byte, *bus.Error) {
			ref := bus.UserCredentialRef{Server: server, UserID: r.URL.Query().Get("user_id")}
			return marshalValid(ref, ref.Validate())
		})
	case http.MethodDelete:
		g.userCredRequest(w, r, bus.SubjectUserCredDelete, func() ([]byte, *bus.Error) {
			ref := bus.UserCredentialRef{Server: server, UserID: r.URL.Query().Get("user_id")}
			return marshalValid(ref, ref.Validate())
		})
	default:
		g.userCredRequest(w, r, bus.SubjectUserCredPut, func() ([]byte, *bus.Error) {
			var in bus.UserCredentialPut
			if e := g.readOpsBody(w, r, &in, userCredShape); e != nil {
				return nil, e
			}
			in.Server = server
			return marshalValid(in, in.Validate())
		})
	}
}

func (g *Ingress) serveServerUserCredentials(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.userCredRequest(w, r, bus.SubjectUserCredList, func() ([]byte, *bus.Error) {
		ref := bus.UserCredentialRef{Server: r.PathValue("id"), AllUsers: true}
		return marshalValid(ref, ref.Validate())
	})
}

func (g *Ingress) serveUserCredentials(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.userCredRequest(w, r, bus.SubjectUserCredList, func() ([]byte, *bus.Error) {
		ref := bus.UserCredentialRef{UserID: r.URL.Query().Get("user_id")}
		return marshalValid(ref, ref.Validate())
	})
}

// userCredRequest verifies the caller, builds the body (after the check, so
// a refused caller's is never read), sends it to the registry with the
// caller's envelope and relays the answer. Bodies are never logged: they
// hold tokens.
func (g *Ingress) userCredRequest(w http.ResponseWriter, r *http.Request, subject string, body func() ([]byte, *bus.Error)) {
	env, e := g.envelopeOf(r)
	if e != nil {
		writeRESTError(w, e)
		return
	}
	data, e := body()
	if e != nil {
		writeRESTError(w, e)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data, Header: env.Header()})
	if err != nil {
		e := bus.RequestError("registry service", err)
		g.log.Warn("user credential request failed", "subject", subject, "request_id", env.RequestID, "err", e.Message)
		writeRESTError(w, e)
		return
	}
	if e := bus.ReplyError(reply); e != nil {
		g.log.Info("user credential request refused", "subject", subject, "request_id", env.RequestID, "caller", env.Caller.Name(), "code", e.Kind.Code)
		writeRESTError(w, restRouteError(e))
		return
	}
	out := reply.Data
	if len(bytes.TrimSpace(out)) == 0 || !json.Valid(out) {
		out = []byte("{}")
	}
	writeJSON(w, http.StatusOK, out)
}
