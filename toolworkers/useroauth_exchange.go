package toolworkers

import (
	"context"
	"errors"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nats.go/micro"
)

// Token exchange (RFC 8693, oauth2_flow token_exchange;
// bus/useroauth_exchange.go). The ingress hands a worker of this server
// the caller's own OAuth access token; the worker exchanges it, with the
// gateway's confidential client, for one the authorization server issues
// for this server's resource, and stores that as the caller's credential,
// which calls then use as any per-user token. The caller's token is used
// once and kept nowhere.

// subjectAccessToken is RFC 8693's type of the token exchanged.
const subjectAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// serveExchange registers the exchange endpoint on the worker's service.
func (w *Worker) serveExchange() error {
	u := w.userOAuth
	return w.svc.AddEndpoint("oauth_exchange", micro.HandlerFunc(func(req micro.Request) {
		var in bus.OAuthExchange
		if e := decodeFlow(req.Data(), &in, in.Validate); e != nil {
			bus.RespondError(req, e)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), userOAuthTimeout)
		defer cancel()
		out, e := u.exchange(ctx, in)
		if e != nil {
			bus.RespondError(req, e)
			return
		}
		_ = req.RespondJSON(out)
	}), micro.WithEndpointSubject(bus.ToolOAuthExchange(w.up.Name)))
}

// exchange trades in.SubjectToken for a token for this server and stores
// it as in.User's.
func (u *userOAuth) exchange(ctx context.Context, in bus.OAuthExchange) (bus.OAuthExchangeAnswer, *bus.Error) {
	client, err := u.oauthClient(ctx)
	if err != nil {
		u.log.Error("token exchange: the authorization server's token endpoint is unknown", "err", err)
		return bus.OAuthExchangeAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': its authorization server cannot be reached", u.server)
	}
	now := time.Now().UTC()
	tokens, err := client.Exchange(ctx, in.SubjectToken, subjectAccessToken, now)
	if err != nil {
		var fe *oauth.FlowError
		if errors.As(err, &fe) {
			u.log.Info("token exchange refused", "user", bus.UserIDOfKey(in.User), "reason", fe.Reason)
			return bus.OAuthExchangeAnswer{}, bus.Errorf(bus.ErrUpstreamAuth, "MCP server '%s': the exchange of your token was refused: %s", u.server, fe.Reason)
		}
		return bus.OAuthExchangeAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': the token exchange failed", u.server)
	}
	if !bus.ValidUserCredential(tokens.AccessToken) || (tokens.RefreshToken != "" && !bus.ValidUserCredential(tokens.RefreshToken)) {
		return bus.OAuthExchangeAnswer{}, bus.Errorf(bus.ErrUpstreamAuth, "MCP server '%s': the exchanged token cannot be sent in a header", u.server)
	}
	c := userCredOf(in.User, u.server, tokens, now)
	if _, e := u.store(ctx, c, 0, false); e != nil {
		return bus.OAuthExchangeAnswer{}, e
	}
	u.log.Info("token exchanged for the upstream", "user", bus.UserIDOfKey(in.User))
	return bus.OAuthExchangeAnswer{ExpiresAt: c.ExpiresAt}, nil
}

// exchangeNeeded answers a caller this server has no exchanged token for:
// the ingress exchanges an OAuth caller's token before its calls, so this
// is a caller with a gateway key, or one whose exchange failed or expired.
func (u *userOAuth) exchangeNeeded(env *bus.Envelope, why string) *bus.Error {
	u.log.Info("no exchanged token for the caller", "user", bus.UserIDOfKey(env.Caller.UserKey()), "why", why, "request_id", env.RequestID)
	return bus.Errorf(bus.ErrUserCredentialRequired,
		"MCP server '%s' calls its upstream as you with a token exchanged for your own OAuth access token (RFC 8693), and there is none for you: call with an access token from the gateway's identity provider, not a gateway key; if you do, the exchange failed (the gateway's log says why)",
		u.server)
}
