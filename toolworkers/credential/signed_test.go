package credential

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/signing"
)

// headerSink is an upstream that keeps the headers of the last request.
type headerSink struct {
	mu   sync.Mutex
	last http.Header
	n    int
}

func (h *headerSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.last, h.n = r.Header.Clone(), h.n+1
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func testKeyring(t *testing.T) (*signing.Keyring, *rsa.PrivateKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := signing.Thumbprint(&k.PublicKey)
	return signing.Static(&signing.Key{Kid: kid, Public: &k.PublicKey, Private: k}), k
}

func claimsOf(t *testing.T, header string, pub *rsa.PublicKey) signing.Claims {
	t.Helper()
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok {
		t.Fatalf("not a bearer token: %q", header)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c signing.Claims
	if err := parsed.Claims(pub, &c); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	return c
}

// Every request of a signed server carries a fresh token for the call its
// context carries: in Authorization, unless the server's own credential is
// there, which then stays and the token goes in X-Mcpbus-Token. A header of
// that name set by anyone else never survives.
func TestSignedRequests(t *testing.T) {
	ring, key := testKeyring(t)
	signer := signing.NewSigner(signing.Settings{Issuer: "https://gw.test", Audience: "mcp", TTL: time.Minute}, ring)
	sink := &headerSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	call := signing.Call{Caller: bus.Identity{KeyID: "k", User: "alice", Team: "t"}, RequestID: "r1", Method: bus.MethodToolsCall, Tool: "echo"}

	send := func(up *config.Upstream, header http.Header, withCall bool) http.Header {
		t.Helper()
		c := New(up, Options{Signer: signer})
		ctx := context.Background()
		if withCall {
			ctx = signing.WithCall(ctx, call)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != header.Get("Authorization") {
			t.Fatal("the caller's request was modified")
		}
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.last
	}

	plain := &config.Upstream{Name: "weather", URL: u}
	got := send(plain, http.Header{SignedCallHeader: {"Bearer forged"}}, true)
	c := claimsOf(t, got.Get("Authorization"), &key.PublicKey)
	if c.Subject != "alice" || c.Server != "weather" || c.Tool != "echo" || c.RequestID != "r1" || c.Team != "t" || c.Issuer != "https://gw.test" {
		t.Fatalf("claims %+v", c)
	}
	if got.Get(SignedCallHeader) != "" {
		t.Fatalf("a forged %s reached the upstream", SignedCallHeader)
	}
	// No call: the gateway's own request (an upstream session's initialize).
	if c := claimsOf(t, send(plain, nil, false).Get("Authorization"), &key.PublicKey); c.Subject != signing.GatewaySubject || c.RequestID != "" {
		t.Fatalf("gateway request claims %+v", c)
	}
	first := c.ID
	if c := claimsOf(t, send(plain, nil, true).Get("Authorization"), &key.PublicKey); c.ID == first {
		t.Fatal("two requests got the same jti")
	}

	// The server's own credential in Authorization (bearer_token) stays.
	got = send(plain, http.Header{"Authorization": {"Bearer upstream-own"}, SignedCallHeader: {"Bearer forged"}}, true)
	if got.Get("Authorization") != "Bearer upstream-own" {
		t.Fatalf("the server's credential was replaced: %q", got.Get("Authorization"))
	}
	if c := claimsOf(t, got.Get(SignedCallHeader), &key.PublicKey); c.Subject != "alice" {
		t.Fatalf("second-header claims %+v", c)
	}
}

// An aws_sigv4 server's signer sets Authorization after the token is made:
// the token goes in X-Mcpbus-Token from the start, and is covered by the
// SigV4 signature.
func TestSignedRequestsBesideSigV4(t *testing.T) {
	ring, key := testKeyring(t)
	signer := signing.NewSigner(signing.Settings{Issuer: "i", Audience: "mcp", TTL: time.Minute}, ring)
	sink := &headerSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	up := &config.Upstream{Name: "aws", URL: u, AWS: &config.AWSSigV4{AccessKeyID: "AKID", SecretAccessKey: "secret", Region: "us-east-1", Service: "execute-api"}}
	c := New(up, Options{Signer: signer})
	resp, err := c.HTTP.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if a := sink.last.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256") || !strings.Contains(a, "x-mcpbus-token") {
		t.Fatalf("Authorization %q: want the SigV4 signature, covering the token header", a)
	}
	claimsOf(t, sink.last.Get(SignedCallHeader), &key.PublicKey)
}

// Without a key to sign with, nothing is sent: the upstream would only
// refuse an unsigned request.
func TestSignedRequestsWithoutKey(t *testing.T) {
	sink := &headerSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	signer := signing.NewSigner(signing.Settings{Issuer: "i", Audience: "mcp", TTL: time.Minute}, signing.Static(nil))
	c := New(&config.Upstream{Name: "weather", URL: u}, Options{Signer: signer})
	_, err := c.HTTP.Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Fatalf("err = %v, want no signing key", err)
	}
	if sink.n != 0 {
		t.Fatal("an unsigned request reached the upstream")
	}
}
