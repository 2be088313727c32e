package toolworkers

// Per-user credentials (bus/usercreds.go): a server with is_byok has no
// credential of its own; a call goes upstream with the caller's, which the
// registry stored sealed in KV. This replica reads a user's credential at
// call time (MSG.GET: the workers' bus user may not make consumers or direct
// gets) and keeps it in memory; it hears every write and revocation of its
// server's keys on their subjects and drops what it kept, so a revoked
// credential is not used once the revocation reached it. The token joins
// the call's per-request headers: the call gets an upstream session of its
// own credential set (clients.go) and the scrubber of that session cleans
// the token out of every answer (scrub.go).

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

const (
	// maxUserCreds bounds the credentials one replica keeps; past it the
	// least recently used goes.
	maxUserCreds = 4096
	// userCredTTL bounds how long one is kept without being read again: a
	// backstop, should a change on the bus be missed.
	userCredTTL = time.Minute
	// userCredReadTimeout bounds one read of the bucket.
	userCredReadTimeout = 2 * time.Second
)

// userCreds is one worker's cache of its server's users' credentials.
type userCreds struct {
	nc      *nats.Conn
	server  string
	secrets *bus.SecretKey

	mu      sync.Mutex
	entries map[string]*userCred // by KV key
	// epoch counts the changes heard: a read that began before one does
	// not keep what it read (it may be what was just revoked).
	epoch uint64
	// changed are closed at the next change of their key heard (watch).
	changed map[string]chan struct{}
}

// userCred is what a replica knows of one user's credential: the token, or
// that there is none.
type userCred struct {
	token   string // "" when the user has none
	expires *time.Time
	read    time.Time
	used    time.Time
}

func newUserCreds(nc *nats.Conn, server string, secrets *bus.SecretKey) *userCreds {
	return &userCreds{nc: nc, server: server, secrets: secrets, entries: map[string]*userCred{}, changed: map[string]chan struct{}{}}
}

// subscribe listens for the writes and revocations of the server's keys,
// and flushes so the NATS server has the interest before a call is taken.
func (u *userCreds) subscribe() (*nats.Subscription, error) {
	prefix := bus.KVPrefix(bus.BucketUserCredentials)
	sub, err := u.nc.Subscribe(bus.KVSubject(bus.BucketUserCredentials, "*."+u.server), func(m *nats.Msg) {
		u.forget(strings.TrimPrefix(m.Subject, prefix))
	})
	if err != nil {
		return nil, err
	}
	return sub, u.nc.Flush()
}

func (u *userCreds) forget(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.entries, key)
	u.epoch++
	if ch := u.changed[key]; ch != nil {
		close(ch)
		delete(u.changed, key)
	}
}

// watch returns a channel closed at the next change of key heard, and the
// epoch now (keepToken).
func (u *userCreds) watch(key string) (<-chan struct{}, uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ch := u.changed[key]
	if ch == nil {
		ch = make(chan struct{})
		u.changed[key] = ch
	}
	return ch, u.epoch
}

// cached is the token kept for key, if one is (within userCredTTL).
func (u *userCreds) cached(key string) (tok string, expires *time.Time, ok bool) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	e := u.entries[key]
	if e == nil || now.Sub(e.read) >= userCredTTL {
		return "", nil, false
	}
	e.used = now
	return e.token, e.expires, true
}

// keepToken keeps tok for key, unless a change was heard since epoch.
func (u *userCreds) keepToken(key, tok string, expires *time.Time, epoch uint64) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.epoch == epoch {
		u.keep(key, &userCred{token: tok, expires: expires, read: now, used: now})
	}
}

// token returns userKey's token for the server; "" when the user has none
// (or it expired).
func (u *userCreds) token(ctx context.Context, userKey string) (string, error) {
	key := bus.UserCredentialKey(userKey, u.server)
	now := time.Now()
	u.mu.Lock()
	if e := u.entries[key]; e != nil && now.Sub(e.read) < userCredTTL {
		e.used = now
		tok, expires := e.token, e.expires
		u.mu.Unlock()
		if expires != nil && !now.Before(*expires) {
			return "", nil
		}
		return tok, nil
	}
	epoch := u.epoch
	u.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, userCredReadTimeout)
	defer cancel()
	entry, ok, err := bus.KVGet(rctx, u.nc, bus.BucketUserCredentials, key)
	if err != nil {
		return "", err
	}
	e := &userCred{read: now, used: now}
	if ok && !entry.Deleted {
		c, err := bus.DecodeUserCredential(key, entry.Value)
		if err == nil {
			c, err = u.secrets.OpenUserCredential(c)
		}
		if err != nil {
			return "", err
		}
		e.token, e.expires = c.AccessToken, c.ExpiresAt
	}
	u.mu.Lock()
	if u.epoch == epoch {
		u.keep(key, e)
	}
	u.mu.Unlock()
	if e.expires != nil && !now.Before(*e.expires) {
		return "", nil
	}
	return e.token, nil
}

// keep stores e under key, dropping the least recently used when full
// (u.mu held).
func (u *userCreds) keep(key string, e *userCred) {
	if _, ok := u.entries[key]; !ok && len(u.entries) >= maxUserCreds {
		var oldest string
		for k, c := range u.entries {
			if oldest == "" || c.used.Before(u.entries[oldest].used) {
				oldest = k
			}
		}
		delete(u.entries, oldest)
	}
	u.entries[key] = e
}

// callHeaders are the per-request headers of a call (perRequestHeaders),
// and on a server with is_byok the caller's own credential in the auth
// type's header, unless the request brought one for it itself (which wins,
// as in LiteLLM). A caller with none stored is refused here: nothing goes
// upstream.
func (w *Worker) callHeaders(ctx context.Context, env *bus.Envelope) (http.Header, *bus.Error) {
	perRequest := w.perRequestHeaders(env.Forward)
	if w.userOAuth != nil {
		return w.oauthHeaders(ctx, env, perRequest) // useroauth_refresh.go
	}
	if w.userCreds == nil {
		return perRequest, nil
	}
	name := w.authHeaderName()
	if perRequest.Get(name) != "" {
		return perRequest, nil
	}
	tok, err := w.userCreds.token(ctx, env.Caller.UserKey())
	if err != nil {
		w.log.Error("cannot read a user's credential", "user", bus.UserIDOfKey(env.Caller.UserKey()), "request_id", env.RequestID, "err", err)
		return nil, bus.Errorf(bus.ErrServiceUnavailable, "MCP server '%s': your stored credential could not be read; try again", w.up.Name)
	}
	if tok == "" {
		return nil, bus.Errorf(bus.ErrUserCredentialRequired,
			"MCP server '%s' takes each user's own credential, and you have none stored (or it expired): add yours with POST /v1/mcp/server/%s/user-credential {\"credential\": \"<token>\"}, or send it with this request as x-mcp-%s-%s",
			w.up.Name, w.up.Name, strings.ToLower(w.up.Name), strings.ToLower(name))
	}
	n, v, aerr := config.AuthHeader(w.up.AuthType, tok)
	if aerr != nil {
		return nil, bus.Errorf(bus.ErrUserCredentialRequired, "MCP server '%s': your stored credential does not fit its auth_type %s (%s): store it again",
			w.up.Name, w.up.AuthType, strings.TrimPrefix(aerr.Error(), "auth_value: "))
	}
	out := perRequest.Clone()
	if out == nil {
		out = http.Header{}
	}
	out.Set(n, v)
	return out, nil
}

// authHeaderName is the header the server's auth_type puts its credential in.
func (w *Worker) authHeaderName() string {
	if w.up.AuthType == "api_key" {
		return "X-Api-Key"
	}
	return "Authorization"
}
