package credential

// Upstream OAuth2 (auth_type oauth2): the client-credentials grant at the
// server's token_url, with the access token sent upstream as a bearer token.
//
// One token serves every replica of a server's worker. A source first looks in
// its own process (a fetch in flight is shared by every caller), then in the
// NATS KV bucket bus.BucketOAuthTokens (key = server name). When neither holds a
// usable token, the replica that wins a lock key ("<server>.lock", taken with
// kv.Create, which fails while the key exists) fetches one and puts it in the
// bucket; the others watch the bucket and take the token the winner puts there.
// A lock older than oauthLockTTL is abandoned (its holder crashed or hung) and
// may be taken over with kv.Update on the revision seen, so a dead replica
// blocks the others for at most that long. Should the bucket fail, a replica
// fetches on its own rather than fail the call: availability before economy.
//
// Secrets stay in this process: errors and log lines name the server, the HTTP
// status and the OAuth error code, never the client secret, a token or the token
// URL (whose query may carry a credential).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	// oauthLockTTL is how long a replica may hold the fetch lock before another
	// may take it over, and so also how long a waiting replica waits at most for
	// the holder's token (and the bound on the holder's own token request).
	oauthLockTTL = 10 * time.Second
	// oauthFlightTimeout bounds one shared fetch (wait, lock, request, put). It
	// runs detached from the caller that started it, so that caller giving up
	// does not fail the others waiting on the same fetch.
	oauthFlightTimeout = 30 * time.Second
	// oauthKVTimeout bounds single KV operations done outside a caller's context.
	oauthKVTimeout = 2 * time.Second
	// oauthMaxMargin: a token is refreshed once less than this, or a tenth of its
	// lifetime if that is less, remains.
	oauthMaxMargin = 30 * time.Second
	// oauthDefaultLifetime applies when the token endpoint gives no expires_in:
	// the token is used that long (or until the upstream refuses it).
	oauthDefaultLifetime = time.Hour
)

// oauth2Config is what a server's config gives (already resolved from os.environ/).
type oauth2Config struct {
	TokenURL, ClientID, ClientSecret string
	Scopes                           []string
}

// tokenStore is the token bucket shared by a server's worker replicas: kv
// writes and reads it, nc follows it (bus.FollowKV: a worker's bus user may
// not create JetStream consumers).
type tokenStore struct {
	nc *nats.Conn
	kv jetstream.KeyValue
}

// oauthTokenBucket opens the shared token bucket, which the registry makes
// (registry.TokenBucket: a worker's bus user may only use it). It lives in
// memory: tokens are not written to disk, and losing them on a restart costs
// one fetch. Call it once per process and pass the result to every source.
func oauthTokenBucket(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*tokenStore, error) {
	kv, err := js.KeyValue(ctx, bus.BucketOAuthTokens)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", bus.BucketOAuthTokens, err)
	}
	return &tokenStore{nc: nc, kv: kv}, nil
}

// oauth2Token is a token as cached in process and stored in KV.
type oauth2Token struct {
	Access string    `json:"access_token"`
	Expiry time.Time `json:"expiry"`
	Issued time.Time `json:"issued_at"`
}

// fresh reports whether t may still be used at now: more than the refresh
// margin, min(30 s, 10% of its lifetime), remains before it expires.
func (t *oauth2Token) fresh(now time.Time) bool {
	if t == nil || t.Access == "" {
		return false
	}
	margin := oauthMaxMargin
	if !t.Issued.IsZero() {
		if tenth := t.Expiry.Sub(t.Issued) / 10; tenth < margin {
			margin = tenth
		}
	}
	return now.Add(margin).Before(t.Expiry)
}

// tokenFlight is one fetch shared by every caller that wants a token meanwhile.
type tokenFlight struct {
	done chan struct{}
	tok  *oauth2Token
	err  error
}

// oauth2Source hands out the access token of one upstream server.
type oauth2Source struct {
	server  string
	secret  string
	cc      *clientcredentials.Config
	kv      jetstream.KeyValue // nil: cache in process only
	nc      *nats.Conn         // follows kv (bus.FollowKV)
	secrets *bus.SecretKey     // seals the token shared in kv
	hc      *http.Client
	log     *slog.Logger
	owner   string // names this source in the lock it holds
	lockKey string
	lockTTL time.Duration
	now     func() time.Time

	cur      atomic.Pointer[oauth2Token] // read lock-free on every request
	mu       sync.Mutex
	rejected string // the last token the upstream refused; never taken from KV again
	flight   *tokenFlight
	seen     recentSecrets // the latest tokens, which answers are scrubbed of (scrub.go)
}

// newOAuth2Source returns the token source of server. store is the shared
// token bucket (see oauthTokenBucket), or nil to cache in this process only; hc makes
// the token requests (nil: a client with a 30 s timeout).
func newOAuth2Source(server string, cfg oauth2Config, store *tokenStore, hc *http.Client, log *slog.Logger) *oauth2Source {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if log == nil {
		log = slog.Default()
	}
	src := &oauth2Source{
		server: server,
		secret: cfg.ClientSecret,
		cc: &clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     cfg.TokenURL,
			Scopes:       cfg.Scopes,
			// Zero AuthStyle: try HTTP Basic (RFC 6749's must), then the body
			// (what LiteLLM sends); the style that worked is remembered.
		},
		hc:      hc,
		log:     log,
		owner:   nuid.Next(),
		lockKey: server + ".lock",
		lockTTL: oauthLockTTL,
		now:     time.Now,
	}
	if store != nil {
		src.kv, src.nc = store.kv, store.nc
	}
	return src
}

// Token returns a usable access token, fetching one if needed. Concurrent
// callers share one fetch; each stops waiting when its own ctx ends.
func (s *oauth2Source) Token(ctx context.Context) (string, error) {
	if t := s.cur.Load(); t.fresh(s.now()) {
		return t.Access, nil
	}
	s.mu.Lock()
	if t := s.cur.Load(); t.fresh(s.now()) { // a flight just ended
		s.mu.Unlock()
		return t.Access, nil
	}
	f := s.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		s.flight = f
		go s.run(ctx, f)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.Access, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q: no OAuth2 token in time", s.server)
		}
		return "", bus.Errorf(bus.ErrUpstreamUnavailable, "call to upstream server %q was cancelled while waiting for an OAuth2 token", s.server)
	}
}

func (s *oauth2Source) run(parent context.Context, f *tokenFlight) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), oauthFlightTimeout)
	defer cancel()
	tok, err := s.obtain(ctx)
	s.mu.Lock()
	if err == nil {
		s.cur.Store(tok)
		s.seen.add("Bearer " + tok.Access)
	}
	s.flight = nil
	f.tok, f.err = tok, err
	s.mu.Unlock()
	close(f.done)
}

// Invalidate drops token, which the upstream refused (HTTP 401), from this
// process and from KV, unless either already holds another token.
func (s *oauth2Source) Invalidate(token string) {
	if token == "" {
		return
	}
	s.mu.Lock()
	if t := s.cur.Load(); t != nil && t.Access == token {
		s.cur.CompareAndSwap(t, nil)
	}
	s.rejected = token
	s.mu.Unlock()
	s.log.Info("upstream refused its OAuth2 token; discarding it", "server", s.server)
	if s.kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), oauthKVTimeout)
	defer cancel()
	// Read with bus.KVGet (MSG.GET): a worker's bus user may not make direct
	// gets of a bucket it writes (bus/msgget.go).
	e, ok, err := bus.KVGet(ctx, s.nc, bus.BucketOAuthTokens, s.server)
	if err != nil || !ok {
		if err != nil {
			s.log.Warn("oauth2: reading the shared token failed", "server", s.server, "err", err)
		}
		return
	}
	if t := s.decodeToken(e); t == nil || t.Access != token {
		return // gone already, or another replica put a new one
	}
	// Only the revision read: a token put meanwhile survives.
	if err := s.kv.Delete(ctx, s.server, jetstream.LastRevision(e.Revision)); err != nil {
		s.log.Debug("oauth2: shared token changed before it could be dropped", "server", s.server, "err", err)
	}
}

// obtain gets a token for a flight: through KV when there is one, else directly.
func (s *oauth2Source) obtain(ctx context.Context) (*oauth2Token, error) {
	if s.kv == nil {
		return s.fetch(ctx)
	}
	tok, err := s.obtainShared(ctx)
	var ke *kvFailure
	if errors.As(err, &ke) {
		s.log.Warn("oauth2: shared token bucket unusable; fetching a token for this replica alone", "server", s.server, "err", ke.err)
		return s.fetch(ctx)
	}
	return tok, err
}

// kvFailure marks an error of the bucket itself (as opposed to the token endpoint).
type kvFailure struct{ err error }

func (e *kvFailure) Error() string { return "oauth2 token bucket: " + e.err.Error() }

// obtainShared follows the token and lock keys (bus.FollowKV: a worker's
// bus user may not create consumers): it takes a fresh token as soon as one
// is there, takes the lock when it is free (or abandoned) and then fetches,
// and otherwise waits for the holder's token.
func (s *oauth2Source) obtainShared(ctx context.Context) (*oauth2Token, error) {
	updates := make(chan *bus.KVEntry, 16)
	fctx, cancel := context.WithCancel(ctx)
	f, err := bus.FollowKV(fctx, s.nc, bus.BucketOAuthTokens, []string{s.server, s.lockKey}, func(e bus.KVEntry) {
		select {
		case updates <- &e:
		case <-fctx.Done(): // returned: nobody reads updates any more
		}
	})
	if err != nil {
		cancel()
		return nil, &kvFailure{err}
	}
	defer f.Stop()
	defer cancel() // before Stop, which waits for a blocked apply
	updates <- nil // the keys' values as they were are in: ready

	var (
		tok      *oauth2Token // latest token in KV
		lock     *bus.KVEntry // current lock, nil when free
		lockSeen time.Time    // when this replica first saw that lock
		ready    bool         // initial values delivered
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		if ready {
			now := s.now()
			if tok.fresh(now) && tok.Access != s.rejectedToken() {
				return tok, nil
			}
			if lock == nil {
				rev, err := s.kv.Create(ctx, s.lockKey, s.lockValue())
				if err == nil {
					return s.lead(ctx, rev)
				}
				if !errors.Is(err, jetstream.ErrKeyExists) {
					return nil, &kvFailure{err}
				}
				// Lost the race: the watcher is about to deliver the winner's lock.
			} else if age := s.lockAge(lock, lockSeen, now); age >= s.lockTTL {
				rev, err := s.kv.Update(ctx, s.lockKey, s.lockValue(), lock.Revision)
				if err == nil {
					s.log.Warn("oauth2: took over an abandoned token lock", "server", s.server, "age", age.Round(time.Millisecond))
					return s.lead(ctx, rev)
				}
				if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
					return nil, &kvFailure{err}
				}
				// Someone else took it over or released it; the watcher says which.
			} else {
				timer.Reset(s.lockTTL - age)
			}
		}
		select {
		case e := <-updates:
			switch {
			case e == nil:
				ready = true
			case e.Key == s.lockKey:
				if !e.Deleted {
					if lock == nil || lock.Revision != e.Revision {
						lockSeen = s.now()
					}
					lock = e
				} else {
					lock = nil
				}
			default:
				tok = s.decodeToken(*e) // nil for a delete
			}
		case <-timer.C:
		case <-ctx.Done():
			return nil, s.waitError(ctx)
		}
	}
}

// lockAge is how long the lock has been held: by its server timestamp, or by
// this replica's own observation if that is longer (clocks may disagree).
func (s *oauth2Source) lockAge(lock *bus.KVEntry, seen, now time.Time) time.Duration {
	age := now.Sub(lock.Created)
	if own := now.Sub(seen); own > age {
		age = own
	}
	return age
}

// lead runs while this replica holds the lock at revision rev: fetch, share,
// release. The token request is bounded by the lock's lifetime, so nobody takes
// over a lock whose holder is still trying.
func (s *oauth2Source) lead(ctx context.Context, rev uint64) (*oauth2Token, error) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), oauthKVTimeout)
		defer cancel()
		// Only our revision: a lock someone took over stays theirs.
		if err := s.kv.Delete(rctx, s.lockKey, jetstream.LastRevision(rev)); err != nil {
			s.log.Debug("oauth2: token lock was no longer ours to release", "server", s.server, "err", err)
		}
	}()
	// A holder before us may have put a token after our watcher last looked.
	if e, ok, err := bus.KVGet(ctx, s.nc, bus.BucketOAuthTokens, s.server); err == nil && ok {
		if t := s.decodeToken(e); t.fresh(s.now()) && t.Access != s.rejectedToken() {
			return t, nil
		}
	}
	fctx, cancel := context.WithTimeout(ctx, s.lockTTL)
	defer cancel()
	tok, err := s.fetch(fctx)
	if err != nil {
		return nil, err
	}
	shared := *tok
	shared.Access = s.secrets.SealToken(bus.BucketOAuthTokens, s.server, tok.Access)
	data, _ := json.Marshal(shared)
	if _, err := s.kv.Put(ctx, s.server, data); err != nil {
		s.log.Warn("oauth2: sharing the token with other replicas failed", "server", s.server, "err", err)
	}
	return tok, nil
}

func (s *oauth2Source) lockValue() []byte {
	b, _ := json.Marshal(map[string]any{"owner": s.owner, "at": s.now().UTC()})
	return b
}

func (s *oauth2Source) rejectedToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *oauth2Source) waitError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q: no OAuth2 token in time", s.server)
	}
	return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: OAuth2 token request was cancelled", s.server)
}

// decodeToken reads a token shared in KV, opening its sealed access token;
// nil for a delete, or for one that does not open (another key).
func (s *oauth2Source) decodeToken(e bus.KVEntry) *oauth2Token {
	if e.Deleted {
		return nil
	}
	var t oauth2Token
	if json.Unmarshal(e.Value, &t) != nil || t.Access == "" {
		return nil
	}
	access, err := s.secrets.OpenToken(bus.BucketOAuthTokens, s.server, t.Access)
	if err != nil {
		s.log.Warn("oauth2: a shared token does not open with this replica's key; fetching one", "server", s.server, "err", err)
		return nil
	}
	t.Access = access
	return &t
}

// fetch runs the client-credentials grant.
func (s *oauth2Source) fetch(ctx context.Context) (*oauth2Token, error) {
	issued := s.now()
	t, err := s.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, s.hc))
	if err != nil {
		e := s.tokenError(ctx, err)
		s.log.Warn("oauth2: token request failed", "server", s.server, "err", e.Message)
		return nil, e
	}
	tok := &oauth2Token{Access: t.AccessToken, Expiry: t.Expiry, Issued: issued}
	if tok.Expiry.IsZero() {
		tok.Expiry = issued.Add(oauthDefaultLifetime)
	}
	s.log.Info("oauth2: obtained an access token", "server", s.server, "expires_in", tok.Expiry.Sub(issued).Round(time.Second))
	return tok, nil
}

// tokenError describes a failed token request by HTTP status and OAuth error
// code only: the body, error_description and URL may echo credentials.
func (s *oauth2Source) tokenError(ctx context.Context, err error) *bus.Error {
	var reason string
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		code, status := oauthErrorCode(re.ErrorCode), 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		switch {
		case code != "" && status != 0:
			reason = fmt.Sprintf("%s (HTTP %d)", code, status)
		case code != "":
			reason = code
		default:
			reason = fmt.Sprintf("HTTP %d", status)
		}
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		reason = "the token endpoint did not answer in time"
	case ctx.Err() != nil:
		reason = "cancelled"
	case strings.Contains(err.Error(), "missing access_token"):
		reason = "the answer has no access_token"
	case strings.Contains(err.Error(), "cannot parse"):
		reason = "the answer is not a token response"
	default:
		reason = bus.NetworkReason(err)
	}
	msg := fmt.Sprintf("upstream server %q: OAuth2 token request failed: %s", s.server, reason)
	if len(s.secret) >= 4 {
		msg = strings.ReplaceAll(msg, s.secret, bus.Redacted)
	}
	return bus.Errorf(bus.ErrUpstreamAuth, "%s", msg)
}

// oauthErrorCode keeps an RFC 6749 error code if it looks like one.
func oauthErrorCode(c string) string {
	if c == "" || len(c) > 64 {
		return ""
	}
	for _, r := range c {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return ""
		}
	}
	return c
}

// oauth2Transport sends each request with the server's bearer token and, when
// the upstream refuses that token, retries once with a fresh one.
type oauth2Transport struct {
	base http.RoundTripper
	src  *oauth2Source
}

// newOAuth2Transport wraps base (nil: http.DefaultTransport). A request that
// already carries Authorization (a per-request credential from the caller) goes
// out untouched; so does a redirect to another host, which must not get the token.
func newOAuth2Transport(base http.RoundTripper, src *oauth2Source) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &oauth2Transport{base: base, src: src}
}

func (t *oauth2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" || !sameOrigin(req) {
		return t.base.RoundTrip(req)
	}
	ctx := req.Context()
	tok, err := t.src.Token(ctx)
	if err != nil {
		closeRequestBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(withBearer(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	t.src.Invalidate(tok)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if !replayable {
		return resp, nil
	}
	fresh, err := t.src.Token(ctx)
	if err != nil {
		discardResponse(resp)
		return nil, err
	}
	retry := withBearer(req, fresh)
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	discardResponse(resp)
	return t.base.RoundTrip(retry)
}

// withBearer clones req (the caller's request is never modified) and sets the token.
func withBearer(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// sameOrigin reports whether req goes where the request that started its
// redirect chain went (scheme and host), as it does when there was no redirect.
func sameOrigin(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return first == req || (strings.EqualFold(first.URL.Host, req.URL.Host) && first.URL.Scheme == req.URL.Scheme)
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func discardResponse(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}
