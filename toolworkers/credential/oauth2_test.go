package credential

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	oauthTestServer = "acme"
	oauthTestID     = "gateway-client"
	oauthTestSecret = "s3cr3t-Client-Value"
	oauthTestScope  = "mcp.read mcp.write"
)

// tokenEndpoint is an OAuth2 token endpoint that counts the tokens it issues.
type tokenEndpoint struct {
	*httptest.Server
	fetches   atomic.Int64
	expiresIn atomic.Int64 // seconds; 0 = omit expires_in
	delay     time.Duration
	// hold, if set, keeps each token request open until it is closed; arrived
	// (if set) hears of each request as it starts to wait.
	hold, arrived chan struct{}
}

func newTokenEndpoint(t *testing.T) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.expiresIn.Store(3600)
	te.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		id, secret, basic := r.BasicAuth()
		if basic { // RFC 6749 2.3.1: form-encoded before Basic
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if id != oauthTestID || secret != oauthTestSecret {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client","error_description":"bad secret `+secret+`"}`)
			return
		}
		if r.PostForm.Get("scope") != oauthTestScope {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_scope"}`)
			return
		}
		time.Sleep(te.delay) // real time: a token endpoint slow to answer
		if te.hold != nil {
			if te.arrived != nil {
				te.arrived <- struct{}{}
			}
			<-te.hold
		}
		n := te.fetches.Add(1)
		resp := map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer"}
		if e := te.expiresIn.Load(); e > 0 {
			resp["expires_in"] = e
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(te.Close)
	return te
}

func (te *tokenEndpoint) config(secret string) oauth2Config {
	return oauth2Config{
		TokenURL:     te.URL + "/oauth/token?tenant=private-tenant-key",
		ClientID:     oauthTestID,
		ClientSecret: secret,
		Scopes:       strings.Fields(oauthTestScope),
	}
}

// bearerUpstream accepts the token the endpoint issued, except revoked ones.
type bearerUpstream struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	revoked map[string]bool
	always  bool // refuse every token
	seen    []string
}

func newBearerUpstream(t *testing.T) *bearerUpstream {
	u := &bearerUpstream{revoked: map[string]bool{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		auth := r.Header.Get("Authorization")
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, auth)
		refuse := u.always || u.revoked[strings.TrimPrefix(auth, "Bearer ")]
		u.mu.Unlock()
		if refuse || !strings.HasPrefix(auth, "Bearer ") {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write(body) // echo, so a replayed body can be checked
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *bearerUpstream) auths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func (u *bearerUpstream) revoke(tok string) {
	u.mu.Lock()
	u.revoked[tok] = true
	u.mu.Unlock()
}

// logSink collects log output; at the end of the test it must hold no secret.
func logSink(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		out := buf.String()
		for _, bad := range []string{oauthTestSecret, "tok-", "private-tenant-key"} {
			if strings.Contains(out, bad) {
				t.Errorf("log contains %q:\n%s", bad, out)
			}
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// tokenKV returns n handles on one token bucket, each on its own NATS
// connection, as n worker replicas would have.
func tokenKV(t *testing.T, n int) []*tokenStore {
	return tokenKVOn(t, bustest.Server(t), n)
}

// tokenKVOn is tokenKV on a NATS server the test started.
func tokenKVOn(t *testing.T, ns *server.Server, n int) []*tokenStore {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out []*tokenStore
	for i := range n {
		nc := bustest.Conn(t, ns)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 { // as the registry does
			if err := bus.EnsureOAuthTokenBucket(ctx, js, bus.StatePolicy{}); err != nil {
				t.Fatal(err)
			}
		}
		store, err := oauthTokenBucket(ctx, nc, js)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, store)
	}
	return out
}

func testHTTPClient(t *testing.T, rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, Timeout: 5 * time.Second}
}

func newTestTransport(t *testing.T) *http.Transport {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func oauthPost(t *testing.T, c *http.Client, target, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("post: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestOAuthConcurrentReplicasFetchOnce(t *testing.T) {
	te := newTokenEndpoint(t)
	te.delay = 100 * time.Millisecond // keep the fetch open while everyone piles in
	up := newBearerUpstream(t)
	log := logSink(t)
	kvs := tokenKV(t, 2)
	base := newTestTransport(t)
	var clients []*http.Client
	for _, kv := range kvs {
		src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kv, nil, log)
		clients = append(clients, testHTTPClient(t, newOAuth2Transport(base, src)))
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"call":%d}`, i)
			code, got := oauthPost(t, clients[i%2], up.URL, body)
			if code != http.StatusOK || got != body {
				t.Errorf("call %d: HTTP %d %q", i, code, got)
			}
		})
	}
	wg.Wait()
	if n := te.fetches.Load(); n != 1 {
		t.Fatalf("token fetches = %d, want 1", n)
	}
	if n := up.hits.Load(); n != 50 {
		t.Fatalf("upstream hits = %d, want 50", n)
	}
}

func TestOAuthInProcessOnlyFetchesOnce(t *testing.T) {
	te := newTokenEndpoint(t)
	te.delay = 50 * time.Millisecond
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), nil, nil, logSink(t))
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if tok, err := src.Token(context.Background()); err != nil || tok != "tok-1" {
				t.Errorf("Token = %q, %v", tok, err)
			}
		})
	}
	wg.Wait()
	if n := te.fetches.Load(); n != 1 {
		t.Fatalf("token fetches = %d, want 1", n)
	}
}

func TestOAuthSecondReplicaReadsKV(t *testing.T) {
	te := newTokenEndpoint(t)
	kvs := tokenKV(t, 2)
	log := logSink(t)
	a := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[0], nil, log)
	b := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[1], nil, log)
	ctx := context.Background()
	ta, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ta != tb || te.fetches.Load() != 1 {
		t.Fatalf("replica tokens %q/%q after %d fetches, want one shared token", ta, tb, te.fetches.Load())
	}
	// The lock is released once the token is shared.
	if _, err := kvs[0].kv.Get(ctx, oauthTestServer+".lock"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("lock still present: %v", err)
	}
}

// With a key (as a gateway always has when replicas share tokens), the token
// in KV is sealed: a reader of the bucket without the key learns nothing, a
// replica with it uses it without fetching, one with another key fetches.
func TestOAuthSharedTokenIsSealed(t *testing.T) {
	te := newTokenEndpoint(t)
	kvs := tokenKV(t, 3)
	log := logSink(t)
	key, _ := bus.NewSecretKey("oauth-test-secret-key-0123456789")
	other, _ := bus.NewSecretKey("another-secret-key-0123456789")
	a := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[0], nil, log)
	b := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[1], nil, log)
	c := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[2], nil, log)
	a.secrets, b.secrets, c.secrets = key, key, other
	ctx := context.Background()
	ta, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kvs[0].kv.Get(ctx, oauthTestServer)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(e.Value()), ta) || !strings.Contains(string(e.Value()), bus.SealedPrefix) {
		t.Fatalf("the shared token is not sealed: %s", e.Value())
	}
	if tb, err := b.Token(ctx); err != nil || tb != ta || te.fetches.Load() != 1 {
		t.Fatalf("a replica with the key: %v %v after %d fetches, want the shared token", tb, err, te.fetches.Load())
	}
	if tc, err := c.Token(ctx); err != nil || te.fetches.Load() != 2 {
		t.Fatalf("a replica with another key: %v %v after %d fetches, want its own fetch", tc, err, te.fetches.Load())
	}
}

// A token inside its refresh margin but not yet expired is fetched anew, and
// the new one reaches the other replica through KV. The replicas' clock is
// the test's, moved by hand: nothing depends on how long the test runs.
func TestOAuthTokenExpiryRefetches(t *testing.T) {
	te := newTokenEndpoint(t) // tokens for an hour: a refresh margin of 30 s
	kvs := tokenKV(t, 2)
	log := logSink(t)
	a := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[0], nil, log)
	b := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[1], nil, log)
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}
	a.now, b.now = now, now
	ctx := context.Background()
	if tok, _ := a.Token(ctx); tok != "tok-1" {
		t.Fatalf("first token %q", tok)
	}
	if tok, _ := a.Token(ctx); tok != "tok-1" || te.fetches.Load() != 1 {
		t.Fatalf("cached token %q after %d fetches", tok, te.fetches.Load())
	}
	mu.Lock()
	clock = a.cur.Load().Expiry.Add(-15 * time.Second) // inside the margin, not yet expired
	mu.Unlock()
	if tok, _ := b.Token(ctx); tok != "tok-2" {
		t.Fatalf("replica b took %q from KV inside the refresh margin, want a new token", tok)
	}
	if tok, _ := a.Token(ctx); tok != "tok-2" || te.fetches.Load() != 2 {
		t.Fatalf("replica a: %q after %d fetches, want tok-2 from KV", tok, te.fetches.Load())
	}
}

func TestOAuthRefreshMargin(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		life, left time.Duration
		fresh      bool
	}{
		{time.Hour, 31 * time.Second, true},
		{time.Hour, 29 * time.Second, false}, // 30 s is less than 10% of an hour
		{10 * time.Second, 1100 * time.Millisecond, true},
		{10 * time.Second, 900 * time.Millisecond, false}, // 10% is less than 30 s
	} {
		tok := &oauth2Token{Access: "x", Issued: now.Add(c.left - c.life), Expiry: now.Add(c.left)}
		if got := tok.fresh(now); got != c.fresh {
			t.Errorf("lifetime %s, %s left: fresh = %v, want %v", c.life, c.left, got, c.fresh)
		}
	}
}

func TestOAuth401RefreshesAndRetriesOnce(t *testing.T) {
	te := newTokenEndpoint(t)
	up := newBearerUpstream(t)
	kvs := tokenKV(t, 1)
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[0], nil, logSink(t))
	c := testHTTPClient(t, newOAuth2Transport(newTestTransport(t), src))
	if code, _ := oauthPost(t, c, up.URL, "one"); code != http.StatusOK {
		t.Fatalf("first call: HTTP %d", code)
	}
	up.revoke("tok-1") // the upstream rotated its keys
	if code, body := oauthPost(t, c, up.URL, "two"); code != http.StatusOK || body != "two" {
		t.Fatalf("call after revocation: HTTP %d %q, want 200 with the body replayed", code, body)
	}
	if f, h := te.fetches.Load(), up.hits.Load(); f != 2 || h != 3 {
		t.Fatalf("fetches=%d hits=%d, want 2 and 3 (one refresh, one retry)", f, h)
	}
	e, _, err := bus.KVGet(context.Background(), kvs[0].nc, bus.BucketOAuthTokens, oauthTestServer)
	if tok := src.decodeToken(e); err != nil || tok == nil || tok.Access != "tok-2" {
		t.Fatalf("KV holds %v (%v), want tok-2", e, err)
	}

	// Persistent 401: one retry, then the 401 as is.
	up.mu.Lock()
	up.always = true
	up.mu.Unlock()
	hits := up.hits.Load()
	if code, _ := oauthPost(t, c, up.URL, "three"); code != http.StatusUnauthorized {
		t.Fatalf("persistent 401: HTTP %d", code)
	}
	if h := up.hits.Load() - hits; h != 2 {
		t.Fatalf("persistent 401: %d upstream attempts, want 2", h)
	}
	if f := te.fetches.Load(); f != 3 {
		t.Fatalf("persistent 401: %d fetches in all, want 3", f)
	}

	// A body that cannot be replayed is not retried.
	hits = up.hits.Load()
	req, _ := http.NewRequest(http.MethodPost, up.URL, io.NopCloser(strings.NewReader("once")))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || up.hits.Load()-hits != 1 {
		t.Fatalf("unreplayable body: HTTP %d after %d attempts, want 401 after 1", resp.StatusCode, up.hits.Load()-hits)
	}
}

func TestOAuthInvalidateKeepsNewerKVToken(t *testing.T) {
	te := newTokenEndpoint(t)
	kvs := tokenKV(t, 2)
	log := logSink(t)
	a := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[0], nil, log)
	b := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kvs[1], nil, log)
	ctx := context.Background()
	a.Token(ctx)
	a.Invalidate("tok-1")
	if tok, _ := a.Token(ctx); tok != "tok-2" {
		t.Fatalf("after invalidation: %q", tok)
	}
	b.Invalidate("tok-1") // a late 401 for the old token on another replica
	if tok, _ := b.Token(ctx); tok != "tok-2" || te.fetches.Load() != 2 {
		t.Fatalf("replica b: %q after %d fetches, want tok-2 from KV", tok, te.fetches.Load())
	}
}

func TestOAuthTokenEndpointRejectsClient(t *testing.T) {
	te := newTokenEndpoint(t)
	src := newOAuth2Source(oauthTestServer, te.config("wrong-"+oauthTestSecret), tokenKV(t, 1)[0], nil, logSink(t))
	_, err := src.Token(context.Background())
	check := func(err error) {
		t.Helper()
		var be *bus.Error
		if !errors.As(err, &be) || be.Kind != bus.ErrUpstreamAuth {
			t.Fatalf("err = %#v, want a bus.Error of kind ErrUpstreamAuth", err)
		}
		want := `upstream server "acme": OAuth2 token request failed: invalid_client (HTTP 401)`
		if be.Message != want {
			t.Fatalf("message %q, want %q", be.Message, want)
		}
		for _, bad := range []string{oauthTestSecret, "tok-", "private-tenant-key", "oauth/token"} {
			if strings.Contains(err.Error(), bad) {
				t.Fatalf("error %q contains %q", err, bad)
			}
		}
	}
	check(err)

	// Through the transport the caller gets the same error (wrapped in *url.Error).
	up := newBearerUpstream(t)
	c := testHTTPClient(t, newOAuth2Transport(newTestTransport(t), src))
	req, _ := http.NewRequest(http.MethodPost, up.URL, strings.NewReader("x"))
	if _, err := c.Do(req); err == nil {
		t.Fatal("call succeeded without a token")
	} else {
		var be *bus.Error
		if !errors.As(err, &be) {
			t.Fatalf("transport error %v is not a bus.Error", err)
		}
		check(be)
	}
	if up.hits.Load() != 0 {
		t.Fatal("request went upstream without a token")
	}
}

func TestOAuthTokenEndpointUnreachable(t *testing.T) {
	te := newTokenEndpoint(t)
	cfg := te.config(oauthTestSecret)
	te.Close()
	src := newOAuth2Source(oauthTestServer, cfg, nil, nil, logSink(t))
	_, err := src.Token(context.Background())
	var be *bus.Error
	if !errors.As(err, &be) || be.Kind != bus.ErrUpstreamAuth || !strings.Contains(be.Message, `"acme"`) || strings.Contains(be.Message, "private-tenant-key") {
		t.Fatalf("err = %v", err)
	}
}

func TestOAuthCallerAuthorizationWins(t *testing.T) {
	te := newTokenEndpoint(t)
	up := newBearerUpstream(t)
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), nil, nil, logSink(t))
	c := testHTTPClient(t, newOAuth2Transport(newTestTransport(t), src))

	req, _ := http.NewRequest(http.MethodPost, up.URL, strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer caller-own")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen := up.auths(); seen[0] != "Bearer caller-own" || te.fetches.Load() != 0 {
		t.Fatalf("upstream saw %q, %d fetches; want the caller's header and none", seen, te.fetches.Load())
	}

	// The gateway's token never lands on the caller's request.
	req, _ = http.NewRequest(http.MethodPost, up.URL, strings.NewReader("y"))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, seen := req.Header.Get("Authorization"), up.auths(); got != "" || seen[1] != "Bearer tok-1" {
		t.Fatalf("caller's request got Authorization %q; upstream saw %q", got, seen)
	}
}

func TestOAuthNoTokenOnRedirectElsewhere(t *testing.T) {
	te := newTokenEndpoint(t)
	other := newBearerUpstream(t)
	front := httptest.NewServer(http.RedirectHandler(other.URL+"/moved", http.StatusTemporaryRedirect))
	t.Cleanup(front.Close)
	// 127.0.0.1 vs localhost: a different host.
	target := strings.Replace(front.URL, "127.0.0.1", "localhost", 1)
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), nil, nil, logSink(t))
	c := testHTTPClient(t, newOAuth2Transport(newTestTransport(t), src))
	oauthPost(t, c, target, "x")
	if seen := other.auths(); len(seen) != 1 || seen[0] != "" {
		t.Fatalf("redirect target saw Authorization %q, want none", seen)
	}
}

// While a live peer holds the token lock, a replica fetches nothing: it waits
// and takes the token the peer puts. The lock never ages out here (TTL of an
// hour), so only the peer's token can end the wait; the peer puts it once the
// replica is watching the bucket.
func TestOAuthWaitsForLockHolder(t *testing.T) {
	te := newTokenEndpoint(t)
	ns := bustest.Server(t)
	kv := tokenKVOn(t, ns, 1)[0]
	ctx := context.Background()
	lockRev, err := kv.kv.Create(ctx, oauthTestServer+".lock", []byte(`{"owner":"other"}`))
	if err != nil {
		t.Fatal(err)
	}
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kv, nil, slog.New(slog.DiscardHandler))
	src.lockTTL = time.Hour
	type result struct {
		tok string
		err error
	}
	got := make(chan result, 1)
	before := ns.NumSubscriptions()
	go func() {
		tok, err := src.Token(t.Context()) // a wait that never ends fails the test by its timeout
		got <- result{tok, err}
	}()
	bustest.Eventually(t, 30*time.Second, "the replica follows the token and lock keys", func() error {
		if len(got) > 0 {
			return nil // returned already: said below
		}
		return bustest.AtLeast("subscriptions on the server", ns.NumSubscriptions(), before+2)
	})
	select {
	case r := <-got:
		t.Fatalf("Token returned %q, %v while the peer held the lock", r.tok, r.err)
	default:
	}
	// The peer finishes its fetch.
	tok, _ := json.Marshal(oauth2Token{Access: "tok-from-peer", Issued: time.Now(), Expiry: time.Now().Add(time.Hour)})
	kv.kv.Put(ctx, oauthTestServer, tok)
	kv.kv.Delete(ctx, oauthTestServer+".lock", jetstream.LastRevision(lockRev))
	r := <-got
	if r.err != nil || r.tok != "tok-from-peer" || te.fetches.Load() != 0 {
		t.Fatalf("Token = %q, %v after %d fetches; want the peer's token", r.tok, r.err, te.fetches.Load())
	}
}

// An abandoned lock (its holder died) is taken over once it is lockTTL old,
// and not before. The replica's clock is the test's: it stays at the lock's
// creation while the replica re-checks the lock (its timer runs on the real
// clock), then moves past the TTL.
func TestOAuthStaleLockTakenOver(t *testing.T) {
	te := newTokenEndpoint(t)
	kv := tokenKV(t, 1)[0]
	ctx := context.Background()
	// A replica took the lock and died.
	if _, err := kv.kv.Create(ctx, oauthTestServer+".lock", []byte(`{"owner":"dead"}`)); err != nil {
		t.Fatal(err)
	}
	lock, err := kv.kv.Get(ctx, oauthTestServer+".lock")
	if err != nil {
		t.Fatal(err)
	}
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), kv, nil, logSink(t))
	src.lockTTL = 100 * time.Millisecond
	var mu sync.Mutex
	clock, reads := lock.Created(), 0
	src.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		reads++
		return clock
	}
	readsSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return reads
	}
	type result struct {
		tok string
		err error
	}
	got := make(chan result, 1)
	go func() {
		tok, err := src.Token(t.Context())
		got <- result{tok, err}
	}()
	// Token, the lock's first sighting and each look at it read the clock:
	// wait for several looks, the timer having fired in between.
	bustest.Eventually(t, 30*time.Second, "the replica looks at the lock again and again", func() error {
		if len(got) > 0 {
			return nil // returned already: said below
		}
		return bustest.AtLeast("reads of the lock", readsSoFar(), 8)
	})
	select {
	case r := <-got:
		t.Fatalf("Token returned %q, %v before the lock was lockTTL old", r.tok, r.err)
	default:
	}
	if n := te.fetches.Load(); n != 0 {
		t.Fatalf("%d fetches while the lock was younger than its TTL", n)
	}
	mu.Lock()
	clock = clock.Add(src.lockTTL)
	mu.Unlock()
	r := <-got
	if r.err != nil || r.tok != "tok-1" {
		t.Fatalf("Token = %q, %v", r.tok, r.err)
	}
	if _, err := kv.kv.Get(ctx, oauthTestServer+".lock"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("lock not released after takeover: %v", err)
	}
}

// A caller whose deadline passes while the fetch it joined is still running
// gets UPSTREAM_TIMEOUT; the fetch goes on for the others. The token endpoint
// holds the request until the caller has given up.
func TestOAuthCallerDeadlineWhileWaiting(t *testing.T) {
	te := newTokenEndpoint(t)
	te.hold, te.arrived = make(chan struct{}), make(chan struct{}, 1)
	release := sync.OnceFunc(func() { close(te.hold) })
	t.Cleanup(release) // before the endpoint's Close, which waits for the request
	src := newOAuth2Source(oauthTestServer, te.config(oauthTestSecret), nil, nil, logSink(t))
	ctx, expire := bustest.ExpiringContext(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := src.Token(ctx)
		errc <- err
	}()
	<-te.arrived
	expire()
	err := <-errc
	var be *bus.Error
	if !errors.As(err, &be) || be.Kind != bus.ErrUpstreamTimeout {
		t.Fatalf("err = %v, want ErrUpstreamTimeout", err)
	}
	// The fetch went on for the callers still waiting.
	release()
	if tok, err := src.Token(context.Background()); err != nil || tok != "tok-1" || te.fetches.Load() != 1 {
		t.Fatalf("Token = %q, %v after %d fetches", tok, err, te.fetches.Load())
	}
}
