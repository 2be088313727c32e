package toolworkers

// Per-user upstream OAuth (auth_type oauth2, oauth2_flow
// authorization_code; bus/useroauth.go). The server's workers hold its
// client secret, so they run the whole flow:
//
//   - a caller without a token is answered -32042 with a one-time ticket
//     link, <public>/oauth/authorize/<server>?ticket= (signIn);
//   - the ingress relays the browser's GET of it here (ToolOAuthStart): the
//     ticket is consumed, a pending sign-in (state, PKCE verifier) kept, and
//     the browser sent to the authorization server (start);
//   - the ingress relays the callback here (ToolOAuthFinish, found by the
//     server name in the state): the pending sign-in is consumed, the code
//     exchanged (RFC 9207's iss checked), and the user's tokens stored
//     sealed in the user credential bucket (finish);
//   - calls then go upstream with the user's token, refreshed once across
//     replicas when it nears its expiry (useroauth_refresh.go).
//
// Tickets, states, verifiers, codes and tokens never reach a log line, and
// records hold the SHA-256 of a ticket or state, never the thing itself.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// userOAuthTimeout bounds a flow step (bucket reads and writes, a token
// request).
const userOAuthTimeout = 20 * time.Second

// userOAuth is one worker's side of its server's per-user sign-in.
type userOAuth struct {
	server  string
	cfg     *config.UserOAuth
	public  string // the gateway's public base URL
	secrets *bus.SecretKey
	js      jetstream.JetStream
	creds   *userCreds
	hc      *http.Client
	log     *slog.Logger

	mu     sync.Mutex
	client *oauth.Client // resolved on first use (discovery)
	kvs    map[string]jetstream.KeyValue
	// flights are this replica's refreshes in progress, by KV key: its
	// concurrent callers share one (useroauth_refresh.go).
	flights map[string]*refreshFlight
}

func newUserOAuth(server string, cfg *config.UserOAuth, public string, o Options, creds *userCreds, log *slog.Logger) *userOAuth {
	return &userOAuth{server: server, cfg: cfg, public: public, secrets: o.Secrets, js: o.JetStream, creds: creds,
		hc: &http.Client{Timeout: userOAuthTimeout}, log: log, kvs: map[string]jetstream.KeyValue{}, flights: map[string]*refreshFlight{}}
}

// kv opens bucket once (the registry makes the buckets).
func (u *userOAuth) kv(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if kv := u.kvs[bucket]; kv != nil {
		return kv, nil
	}
	if u.js == nil {
		return nil, errors.New("this worker has no JetStream")
	}
	kv, err := u.js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", bucket, err)
	}
	u.kvs[bucket] = kv
	return kv, nil
}

// oauthClient is the gateway's client at the server's authorization
// server; endpoints the config leaves out come from oauth2_issuer's
// metadata, read once it succeeds.
func (u *userOAuth) oauthClient(ctx context.Context) (oauth.Client, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.client != nil {
		return *u.client, nil
	}
	c := oauth.Client{Issuer: u.cfg.Issuer, AuthorizationEndpoint: u.cfg.AuthorizationURL, TokenEndpoint: u.cfg.TokenURL}
	// An exchange needs the token endpoint only.
	if c.TokenEndpoint == "" || (!u.cfg.Exchange && c.AuthorizationEndpoint == "") {
		md, err := oauth.DiscoverMetadata(ctx, u.hc, u.cfg.Issuer)
		if err != nil {
			return oauth.Client{}, err
		}
		found, err := oauth.ClientFromMetadata(md)
		if err != nil {
			return oauth.Client{}, err
		}
		c.AuthorizationEndpoint = cmpOr(c.AuthorizationEndpoint, found.AuthorizationEndpoint)
		c.TokenEndpoint = cmpOr(c.TokenEndpoint, found.TokenEndpoint)
		c.IssParameter = found.IssParameter
	}
	c.ClientID, c.ClientSecret, c.Scopes, c.Resource, c.HTTP = u.cfg.ClientID, u.cfg.ClientSecret, u.cfg.Scopes, u.cfg.Resource, u.hc
	c.RedirectURI = u.public + "/oauth/callback"
	u.client = &c
	return c, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// signIn is the answer to a caller without a usable token: a ticket for
// them, in a URL-mode elicitation whose message names the link too (for
// clients that cannot open one).
func (u *userOAuth) signIn(ctx context.Context, env *bus.Envelope, why string) *bus.Error {
	ctx, cancel := context.WithTimeout(ctx, userOAuthTimeout)
	defer cancel()
	flows, err := u.kv(ctx, bus.BucketOAuthFlows)
	if err != nil {
		u.log.Error("cannot start a sign-in", "request_id", env.RequestID, "err", err)
		return bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s' needs you to sign in, and the gateway cannot start a sign-in now; try again", u.server)
	}
	ticket := bus.NewFlowSecret()
	rec, _ := json.Marshal(bus.OAuthFlowRecord{Kind: bus.FlowTicket, User: env.Caller.UserKey(), Server: u.server, Created: time.Now().UTC()})
	if _, err := flows.Create(ctx, bus.OAuthFlowKey(u.server, bus.FlowTicket, ticket), rec); err != nil {
		u.log.Error("cannot store a sign-in ticket", "request_id", env.RequestID, "err", err)
		return bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s' needs you to sign in, and the gateway cannot start a sign-in now; try again", u.server)
	}
	link := u.public + "/oauth/authorize/" + url.PathEscape(u.server) + "?ticket=" + ticket
	u.log.Info("caller asked to sign in to the upstream", "user", bus.UserIDOfKey(env.Caller.UserKey()), "why", why, "request_id", env.RequestID)
	e := bus.Errorf(bus.ErrURLElicitationRequired,
		"MCP server '%s' acts as you at its provider, and %s: sign in at %s (the link works once, for %s), then call again",
		u.server, why, link, bus.OAuthFlowTTL)
	e.Elicitation = &bus.URLElicitation{ID: bus.NewFlowSecret()[:22], URL: link}
	if !e.Elicitation.Valid() {
		e.Elicitation = nil
	}
	return e
}

// serveFlow registers the two flow endpoints on the worker's service.
func (w *Worker) serveFlow() error {
	u := w.userOAuth
	if u.cfg.Exchange {
		return w.serveExchange() // useroauth_exchange.go: no one signs in
	}
	if err := w.svc.AddEndpoint("oauth_start", micro.HandlerFunc(func(req micro.Request) {
		var in bus.OAuthStart
		if e := decodeFlow(req.Data(), &in, in.Validate); e != nil {
			bus.RespondError(req, e)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), userOAuthTimeout)
		defer cancel()
		out, e := u.start(ctx, in)
		if e != nil {
			bus.RespondError(req, e)
			return
		}
		_ = req.RespondJSON(out)
	}), micro.WithEndpointSubject(bus.ToolOAuthStart(w.up.Name))); err != nil {
		return err
	}
	return w.svc.AddEndpoint("oauth_finish", micro.HandlerFunc(func(req micro.Request) {
		var in bus.OAuthFinish
		if e := decodeFlow(req.Data(), &in, in.Validate); e != nil {
			bus.RespondError(req, e)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), userOAuthTimeout)
		defer cancel()
		out, e := u.finish(ctx, in)
		if e != nil {
			bus.RespondError(req, e)
			return
		}
		_ = req.RespondJSON(out)
	}), micro.WithEndpointSubject(bus.ToolOAuthFinish(w.up.Name)))
}

// decodeFlow reads a flow body strictly and checks it (bus says how).
func decodeFlow(data []byte, v any, validate func() *bus.Error) *bus.Error {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.DisallowUnknownFields()
	if len(data) > 8<<10 || d.Decode(v) != nil {
		return bus.Errorf(bus.ErrBadRequest, "sign-in: malformed request on the bus")
	}
	return validate()
}

// take reads and deletes the flow record of secret (one-time: of two
// takers of one record, the delete on the revision read lets one through).
func (u *userOAuth) take(ctx context.Context, kind, secret string) (bus.OAuthFlowRecord, *bus.Error) {
	return u.read(ctx, kind, secret, true)
}

// read reads the flow record of secret, and deletes it when consume.
func (u *userOAuth) read(ctx context.Context, kind, secret string, consume bool) (bus.OAuthFlowRecord, *bus.Error) {
	gone := func() *bus.Error {
		if kind == bus.FlowTicket {
			return bus.Errorf(bus.ErrBadRequest, "this sign-in link was used already or has expired (links work once, for %s): call the tool again for a new one", bus.OAuthFlowTTL)
		}
		return bus.Errorf(bus.ErrBadRequest, "this answer matches no sign-in in progress (its state is unknown, used already or expired): start again from the tool")
	}
	flows, err := u.kv(ctx, bus.BucketOAuthFlows)
	if err != nil {
		u.log.Error("sign-in: the flows bucket cannot be read", "err", err)
		return bus.OAuthFlowRecord{}, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: the gateway cannot read sign-ins in progress now; try again")
	}
	key := bus.OAuthFlowKey(u.server, kind, secret)
	entry, err := flows.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.OAuthFlowRecord{}, gone()
	} else if err != nil {
		u.log.Error("sign-in: the flows bucket cannot be read", "err", err)
		return bus.OAuthFlowRecord{}, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: the gateway cannot read sign-ins in progress now; try again")
	}
	if !consume {
		// Only looked at: the record is checked below as a taken one is.
	} else if err := flows.Delete(ctx, key, jetstream.LastRevision(entry.Revision())); err != nil {
		return bus.OAuthFlowRecord{}, gone() // another request took it first
	}
	rec, err := bus.DecodeOAuthFlow(key, u.server, kind, entry.Value())
	if err == nil {
		rec, err = u.secrets.OpenFlow(key, rec)
	}
	if err != nil {
		u.log.Error("sign-in: a flow record refused", "kind", kind, "err", err)
		return bus.OAuthFlowRecord{}, gone()
	}
	if time.Since(rec.Created) > bus.OAuthFlowTTL {
		return bus.OAuthFlowRecord{}, gone()
	}
	return rec, nil
}

// start consumes a ticket and keeps a pending sign-in for its user: the
// browser goes to the authorization server next. Whoever signs in at the
// provider links that account to the ticket's user, so a browser signed
// in to the gateway as someone else is refused, and one signed in as no
// one must first confirm the account (bus.OAuthStart); neither consumes
// the ticket.
func (u *userOAuth) start(ctx context.Context, in bus.OAuthStart) (bus.OAuthStartAnswer, *bus.Error) {
	rec, e := u.read(ctx, bus.FlowTicket, in.Ticket, false)
	if e != nil {
		return bus.OAuthStartAnswer{}, e
	}
	switch {
	case in.User != "" && in.User != rec.User:
		u.log.Warn("sign-in refused: the link was opened in a browser signed in as another user", "server", u.server)
		return bus.OAuthStartAnswer{}, bus.Errorf(bus.ErrForbidden,
			"this sign-in link was made for another account than the one this browser is signed in to mcpbus as: open your own link (call the tool again), or sign out first")
	case in.User == "" && !in.Confirm:
		return bus.OAuthStartAnswer{Account: bus.AccountOfUserKey(rec.User)}, nil
	}
	if rec, e = u.take(ctx, bus.FlowTicket, in.Ticket); e != nil {
		return bus.OAuthStartAnswer{}, e
	}
	client, err := u.oauthClient(ctx)
	if err != nil {
		u.log.Error("sign-in: the authorization server's endpoints are unknown", "err", err)
		return bus.OAuthStartAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': its sign-in provider cannot be reached (%s)", u.server, bus.Shorten(err.Error(), 200))
	}
	p := oauth.NewPending(time.Now().UTC())
	p.State = bus.FlowState(u.server, bus.NewFlowSecret())
	key := bus.OAuthFlowKey(u.server, bus.FlowPending, p.State)
	sealed, err := u.secrets.SealFlow(key, bus.OAuthFlowRecord{Kind: bus.FlowPending, User: rec.User, Server: u.server, Created: p.Created, Verifier: p.Verifier})
	if err != nil {
		return bus.OAuthStartAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: %v", err)
	}
	value, _ := json.Marshal(sealed)
	flows, err := u.kv(ctx, bus.BucketOAuthFlows)
	if err == nil {
		_, err = flows.Create(ctx, key, value)
	}
	if err != nil {
		u.log.Error("sign-in: cannot keep a pending sign-in", "err", err)
		return bus.OAuthStartAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: the gateway cannot keep the sign-in now; try again")
	}
	u.log.Info("sign-in started", "user", bus.UserIDOfKey(rec.User))
	return bus.OAuthStartAnswer{Redirect: client.AuthorizeURL(p)}, nil
}

// finish consumes the pending sign-in the answer's state names, exchanges
// the code and stores the user's tokens.
func (u *userOAuth) finish(ctx context.Context, in bus.OAuthFinish) (bus.OAuthFinishAnswer, *bus.Error) {
	rec, e := u.take(ctx, bus.FlowPending, in.State)
	if e != nil {
		return bus.OAuthFinishAnswer{}, e
	}
	client, err := u.oauthClient(ctx)
	if err != nil {
		return bus.OAuthFinishAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': its sign-in provider cannot be reached", u.server)
	}
	q := url.Values{"state": {in.State}}
	for k, v := range map[string]string{"code": in.Code, "iss": in.Iss, "error": in.Error, "error_description": in.ErrorDescription} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if client.Issuer == "" && q.Has("iss") {
		q.Del("iss") // nothing to compare it with: oauth2_issuer is not set
	}
	now := time.Now().UTC()
	tokens, err := client.Finish(ctx, oauth.Pending{State: in.State, Verifier: rec.Verifier, Created: rec.Created}, q, now)
	if err != nil {
		var fe *oauth.FlowError
		if errors.As(err, &fe) {
			u.log.Info("sign-in refused", "user", bus.UserIDOfKey(rec.User), "reason", fe.Reason)
			return bus.OAuthFinishAnswer{}, bus.Errorf(bus.ErrBadRequest, "%s", fe.Reason)
		}
		return bus.OAuthFinishAnswer{}, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: the code could not be exchanged")
	}
	if !bus.ValidUserCredential(tokens.AccessToken) || (tokens.RefreshToken != "" && !bus.ValidUserCredential(tokens.RefreshToken)) {
		return bus.OAuthFinishAnswer{}, bus.Errorf(bus.ErrBadRequest, "the provider's token cannot be sent in a header (over %d bytes, or not printable ASCII)", bus.MaxUserCredentialLen)
	}
	c := userCredOf(rec.User, u.server, tokens, now)
	if _, e := u.store(ctx, c, 0, false); e != nil {
		return bus.OAuthFinishAnswer{}, e
	}
	u.log.Info("user signed in to the upstream", "user", bus.UserIDOfKey(rec.User), "refresh", tokens.RefreshToken != "")
	return bus.OAuthFinishAnswer{Server: u.server}, nil
}

// userCredOf is the record of tokens obtained at now.
func userCredOf(user, server string, t oauth.Tokens, now time.Time) bus.UserCredential {
	c := bus.UserCredential{User: user, Server: server, Kind: bus.CredentialOAuth2, AccessToken: t.AccessToken,
		RefreshToken: t.RefreshToken, TokenType: t.TokenType, Scopes: strings.Fields(t.Scope), ObtainedAt: now}
	if !t.Expiry.IsZero() {
		exp := t.Expiry.UTC()
		c.ExpiresAt = &exp
	}
	return c
}

// store writes c sealed: a new record (put), or with cas over revision rev.
func (u *userOAuth) store(ctx context.Context, c bus.UserCredential, rev uint64, cas bool) (uint64, *bus.Error) {
	sealed, err := u.secrets.SealUserCredential(c)
	if err != nil {
		return 0, bus.Errorf(bus.ErrServiceUnavailable, "user credentials: %v", err)
	}
	value, _ := json.Marshal(sealed)
	kv, err := u.kv(ctx, bus.BucketUserCredentials)
	if err != nil {
		return 0, bus.Errorf(bus.ErrServiceUnavailable, "user credentials: the store cannot be reached")
	}
	key := bus.UserCredentialKey(c.User, c.Server)
	if cas {
		rev, err = kv.Update(ctx, key, value, rev)
	} else {
		rev, err = kv.Put(ctx, key, value)
	}
	if err != nil {
		if cas {
			return 0, errCASLost
		}
		u.log.Error("cannot store a user's tokens", "user", bus.UserIDOfKey(c.User), "err", err)
		return 0, bus.Errorf(bus.ErrServiceUnavailable, "sign-in: your tokens could not be stored; try again")
	}
	return rev, nil
}

// errCASLost: another replica wrote the record first.
var errCASLost = bus.Errorf(bus.ErrConflict, "the record changed meanwhile")

// casLost reports whether e is errCASLost.
func casLost(e *bus.Error) bool { return e == errCASLost }
