package toolworkers

// A user's upstream OAuth token at call time, refreshed once across
// replicas. A replica takes the record to refresh it by writing it back
// with RefreshingSince, a compare-and-set on the revision it read: of two
// replicas finding one token near its expiry, one wins the claim and asks
// the authorization server, the other waits for the record to change (it
// hears every write of its server's keys) and uses the winner's token. A
// claim older than refreshClaimTTL (its holder died) may be taken over the
// same way. The refresh token is used once: providers that rotate refresh
// tokens (OAuth 2.1) would take a second use as a replay.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// refreshSkew: a token is refreshed once less than this remains.
	refreshSkew = 30 * time.Second
	// refreshClaimTTL: a claim older than this is abandoned.
	refreshClaimTTL = 15 * time.Second
	// refreshAttempts bounds the reads of one resolution (lost claims,
	// waits for another replica's refresh).
	refreshAttempts = 6
)

// refreshFlight is one resolution shared by this replica's callers of one
// user.
type refreshFlight struct {
	done chan struct{}
	tok  string
	why  string // non-empty: the user must sign in (why)
	e    *bus.Error
}

// fresh reports whether a token expiring at exp may be sent at now.
func fresh(exp *time.Time, now time.Time) bool {
	return exp == nil || now.Add(refreshSkew).Before(*exp)
}

// token is the caller's access token for the upstream, refreshed if it
// nears its expiry; a caller who must sign in gets the elicitation.
func (u *userOAuth) token(ctx context.Context, env *bus.Envelope) (string, *bus.Error) {
	userKey := env.Caller.UserKey()
	key := bus.UserCredentialKey(userKey, u.server)
	if tok, exp, ok := u.creds.cached(key); ok && tok != "" && fresh(exp, time.Now()) {
		return tok, nil
	}
	tok, why, e := u.shared(ctx, key, userKey, "")
	if e != nil {
		return "", e
	}
	if why != "" {
		if u.cfg.Exchange {
			return "", u.exchangeNeeded(env, why) // useroauth_exchange.go
		}
		return "", u.signIn(ctx, env, why)
	}
	return tok, nil
}

// refused handles the upstream refusing tok, the caller's stored token,
// once: the token is renewed (if it still is the stored one), and the
// caller asked to call again, or to sign in again when it cannot be.
func (u *userOAuth) refused(ctx context.Context, env *bus.Envelope, tok string) *bus.Error {
	userKey := env.Caller.UserKey()
	_, why, e := u.shared(ctx, bus.UserCredentialKey(userKey, u.server), userKey, tok)
	switch {
	case e != nil:
		return e
	case why != "" && u.cfg.Exchange:
		return u.exchangeNeeded(env, why)
	case why != "":
		return u.signIn(ctx, env, why)
	}
	return bus.Errorf(bus.ErrUpstreamAuth, "MCP server '%s' refused your token, and the gateway renewed it: call again", u.server)
}

// shared runs resolve once per user at a time on this replica; it goes on
// for the others if the caller that started it gives up.
func (u *userOAuth) shared(ctx context.Context, key, userKey, rejected string) (string, string, *bus.Error) {
	u.mu.Lock()
	f := u.flights[key]
	if f == nil {
		f = &refreshFlight{done: make(chan struct{})}
		u.flights[key] = f
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), userOAuthTimeout+refreshClaimTTL)
			defer cancel()
			f.tok, f.why, f.e = u.resolve(rctx, key, userKey, rejected)
			u.mu.Lock()
			delete(u.flights, key)
			u.mu.Unlock()
			close(f.done)
		}()
	}
	u.mu.Unlock()
	select {
	case <-f.done:
		return f.tok, f.why, f.e
	case <-ctx.Done():
		return "", "", bus.ContextError(ctx, u.server)
	}
}

// resolve reads the user's record and returns a usable token, refreshing
// it if needed (once across replicas); why is set when the user must sign
// in. rejected, if set, is a token the upstream refused: not usable.
func (u *userOAuth) resolve(ctx context.Context, key, userKey, rejected string) (tok, why string, e *bus.Error) {
	kv, err := u.kv(ctx, bus.BucketUserCredentials)
	if err != nil {
		u.log.Error("user tokens cannot be read", "err", err)
		return "", "", bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your sign-in could not be read; try again", u.server)
	}
	for range refreshAttempts {
		changed, epoch := u.creds.watch(key) // before the read: a change after it is seen
		entry, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return "", "you have not signed in there yet (or your sign-in was revoked)", nil
		} else if err != nil {
			u.log.Error("user tokens cannot be read", "err", err)
			return "", "", bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your sign-in could not be read; try again", u.server)
		}
		c, err := bus.DecodeUserCredential(key, entry.Value())
		if err == nil {
			c, err = u.secrets.OpenUserCredential(c)
		}
		if err != nil || c.Kind != bus.CredentialOAuth2 {
			u.log.Error("a user's stored sign-in refused", "user", bus.UserIDOfKey(userKey), "err", err)
			return "", "your stored sign-in cannot be used", nil
		}
		now := time.Now()
		if c.AccessToken != rejected && fresh(c.ExpiresAt, now) {
			u.creds.keepToken(key, c.AccessToken, c.ExpiresAt, epoch)
			return c.AccessToken, "", nil
		}
		if c.RefreshToken == "" {
			return "", "your sign-in there has expired", nil
		}
		if c.RefreshingSince != nil && now.Sub(*c.RefreshingSince) < refreshClaimTTL {
			// Another replica is refreshing: wait for its record.
			wait := time.NewTimer(refreshClaimTTL - now.Sub(*c.RefreshingSince))
			select {
			case <-changed:
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
				return "", "", bus.ContextError(ctx, u.server)
			}
			wait.Stop()
			continue
		}
		claim := c
		since := now.UTC()
		claim.RefreshingSince = &since
		claimRev, e := u.store(ctx, claim, entry.Revision(), true)
		if casLost(e) {
			continue // another replica took it, or it changed: read again
		} else if e != nil {
			return "", "", e
		}
		return u.refresh(ctx, kv, c, claimRev, epoch)
	}
	return "", "", bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your sign-in is being renewed; try again", u.server)
}

// refresh uses c's refresh token, having claimed the record at claimRev,
// and writes the new tokens over the claim.
func (u *userOAuth) refresh(ctx context.Context, kv jetstream.KeyValue, c bus.UserCredential, claimRev, epoch uint64) (string, string, *bus.Error) {
	key := bus.UserCredentialKey(c.User, c.Server)
	client, err := u.oauthClient(ctx)
	var tokens oauth.Tokens
	if err == nil {
		tokens, err = client.Refresh(ctx, c.RefreshToken, time.Now().UTC())
	}
	var fe *oauth.FlowError
	if errors.As(err, &fe) && fe.Refused {
		// Revoked, expired or used: the user signs in again.
		if derr := kv.Delete(ctx, key, jetstream.LastRevision(claimRev)); derr != nil {
			u.log.Warn("a refused sign-in could not be dropped", "user", bus.UserIDOfKey(c.User), "err", derr)
		}
		u.log.Info("the provider refused to renew a user's sign-in; dropped", "user", bus.UserIDOfKey(c.User), "reason", fe.Reason)
		return "", "your sign-in there has ended (the provider refused to renew it)", nil
	}
	if err == nil && (!bus.ValidUserCredential(tokens.AccessToken) || !bus.ValidUserCredential(tokens.RefreshToken)) {
		err = errors.New("the provider's renewed token cannot be sent in a header")
	}
	if err != nil {
		// Release the claim so that the next call tries again.
		c.RefreshingSince = nil
		_, _ = u.store(ctx, c, claimRev, true)
		u.log.Warn("a user's sign-in could not be renewed", "user", bus.UserIDOfKey(c.User), "err", bus.Shorten(err.Error(), 300))
		return "", "", bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your sign-in could not be renewed now (its provider did not answer); try again", u.server)
	}
	next := userCredOf(c.User, c.Server, tokens, time.Now().UTC())
	if next.TokenType == "" {
		next.TokenType = c.TokenType
	}
	if len(next.Scopes) == 0 {
		next.Scopes = c.Scopes
	}
	if _, e := u.store(ctx, next, claimRev, true); e != nil {
		// Another replica took the claim over (ours was too old): its
		// record wins; ours is dropped.
		u.log.Warn("a renewed sign-in lost to another replica's", "user", bus.UserIDOfKey(c.User))
		return "", "", bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your sign-in is being renewed; try again", u.server)
	}
	u.creds.keepToken(key, next.AccessToken, next.ExpiresAt, epoch)
	u.log.Info("a user's sign-in renewed", "user", bus.UserIDOfKey(c.User))
	return next.AccessToken, "", nil
}

// oauthHeaders puts the caller's token in Authorization, unless the request
// brought one itself.
func (w *Worker) oauthHeaders(ctx context.Context, env *bus.Envelope, perRequest http.Header) (http.Header, *bus.Error) {
	if perRequest.Get("Authorization") != "" {
		return perRequest, nil
	}
	tok, e := w.userOAuth.token(ctx, env)
	if e != nil {
		return nil, e
	}
	out := perRequest.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set("Authorization", "Bearer "+tok)
	return out, nil
}

// oauthRefused is err, or for an upstream refusing the caller's stored
// token the renewal's outcome (refused).
func (w *Worker) oauthRefused(ctx context.Context, env *bus.Envelope, perRequest http.Header, err error) error {
	if w.userOAuth == nil || bus.AsError(err).Kind != bus.ErrUpstreamAuth || w.perRequestHeaders(env.Forward).Get("Authorization") != "" {
		return err
	}
	tok, ok := strings.CutPrefix(perRequest.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return err
	}
	return w.userOAuth.refused(ctx, env, tok)
}
