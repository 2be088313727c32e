package signing

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func secretKey(t testing.TB, material string) *bus.SecretKey {
	t.Helper()
	k, err := bus.NewSecretKey(material)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// bucket makes the signing key bucket on ns, on a connection of its own,
// as a registry does.
func bucket(t testing.TB, ns *server.Server) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(bustest.Conn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := bus.EnsureSigningKeyBucket(context.Background(), js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Two registries starting together make one key: KV Create lets one win,
// and the other takes the winner's key.
func TestEnsureTwoRegistriesAgree(t *testing.T) {
	ns := bustest.Server(t)
	sk := secretKey(t, "0123456789abcdef-secret")
	kvs := []jetstream.KeyValue{bucket(t, ns), bucket(t, ns)}
	kids := make([]string, len(kvs))
	errs := make([]error, len(kvs))
	var wg sync.WaitGroup
	for i, kv := range kvs {
		wg.Go(func() {
			k, err := Ensure(context.Background(), kv, sk, nil, quiet())
			if err == nil {
				kids[i] = k.Kid
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if errors.Join(errs...) != nil || kids[0] == "" || kids[0] != kids[1] {
		t.Fatalf("kids %q, errs %v: want one key", kids, errs)
	}
	k, err := Ensure(context.Background(), kvs[0], sk, nil, quiet())
	if err != nil || k.Kid != kids[0] || k.Private == nil {
		t.Fatalf("a restart: kid %v, err %v; want the stored key %s", k, err, kids[0])
	}
	// The private half is sealed at rest: its DER appears nowhere in the record.
	e, err := kvs[0].Get(context.Background(), bus.SigningKeyCurrent)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k.Private)
	if bytes.Contains(e.Value(), []byte(base64.RawURLEncoding.EncodeToString(der)[:64])) || !bytes.Contains(e.Value(), []byte(bus.SealedPrefix)) {
		t.Fatalf("the stored record holds the private key unsealed")
	}
}

// Without the gateway's secret key the key cannot be kept sealed: Ensure
// refuses, naming the variable.
func TestEnsureNeedsTheSecretKey(t *testing.T) {
	_, err := Ensure(context.Background(), nil, nil, nil, quiet())
	if err == nil || !strings.Contains(err.Error(), "MCPBUS_SALT_KEY") {
		t.Fatalf("err = %v, want it to name MCPBUS_SALT_KEY", err)
	}
}

// An operator key replaces the generated one; the replaced key stays in
// the JWKS (previous) so tokens it signed still verify; the same key given
// again changes nothing.
func TestEnsureOperatorKeyRotates(t *testing.T) {
	ns := bustest.Server(t)
	sk := secretKey(t, "0123456789abcdef-secret")
	kv := bucket(t, ns)
	gen, err := Ensure(context.Background(), kv, sk, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	op, _ := rsa.GenerateKey(rand.Reader, 2048)
	k, err := Ensure(context.Background(), kv, sk, op, quiet())
	if err != nil || !k.Private.Equal(op) || k.Source != SourceEnv {
		t.Fatalf("operator key: %v, %v", k, err)
	}
	again, err := Ensure(context.Background(), kv, sk, op, quiet())
	if err != nil || again.Kid != k.Kid {
		t.Fatalf("same operator key again: %v, %v", again, err)
	}

	// An ingress (no secret key) sees both public keys, current first.
	ring := Follow(t.Context(), bustest.Conn(t, ns), nil, []string{bus.SigningKeyCurrent, bus.SigningKeyPrevious}, quiet())
	bustest.Eventually(t, 5*time.Second, "the JWKS of both keys", func() error {
		return bustest.Want("kids", fmt.Sprint(kidsOf(t, ring.JWKS())), fmt.Sprint([]string{k.Kid, gen.Kid}))
	})
	if c := ring.Current(); c == nil || c.Private != nil {
		t.Fatalf("a reader without the secret key: current %v, want its public half only", c)
	}
	// A worker (with it) signs with the operator's key.
	wring := Follow(t.Context(), bustest.Conn(t, ns), sk, []string{bus.SigningKeyCurrent}, quiet())
	bustest.Eventually(t, 5*time.Second, "the worker's key", func() error {
		if c := wring.Current(); c == nil || c.Private == nil || !c.Private.Equal(op) {
			return errors.New("not the operator's key yet")
		}
		return nil
	})
}

func kidsOf(t *testing.T, jwks []byte) []string {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil && jwks != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		if k.Algorithm != Algorithm || k.Use != "sig" || !k.IsPublic() {
			t.Fatalf("key %s: alg %q use %q public %v", k.KeyID, k.Algorithm, k.Use, k.IsPublic())
		}
		out = append(out, k.KeyID)
	}
	return out
}

// A worker with another secret key cannot open the key: it has none to
// sign with, rather than a wrong one.
func TestKeyringWrongSecretKey(t *testing.T) {
	ns := bustest.Server(t)
	kv := bucket(t, ns)
	if _, err := Ensure(context.Background(), kv, secretKey(t, "0123456789abcdef-secret"), nil, quiet()); err != nil {
		t.Fatal(err)
	}
	logs := &bustest.Buffer{}
	ring := Follow(t.Context(), bustest.Conn(t, ns), secretKey(t, "another-key-0123456789"), []string{bus.SigningKeyCurrent}, slog.New(slog.NewTextHandler(logs, nil)))
	bustest.Eventually(t, 5*time.Second, "the refusal logged", func() error {
		if !strings.Contains(logs.String(), "does not open with this key") {
			return errors.New("not yet")
		}
		return nil
	})
	if ring.Current() != nil {
		t.Fatal("a key that does not open was taken")
	}
	if _, err := NewSigner(Settings{Issuer: "i", Audience: "a", TTL: time.Minute}, ring).Sign("s", nil); !errors.Is(err, ErrNoKey) {
		t.Fatalf("Sign: %v, want ErrNoKey", err)
	}
}

// Records that are not the registry's are refused: one not naming its key,
// one whose kid is not its key's thumbprint.
func TestForeignRecordsRefused(t *testing.T) {
	sk := secretKey(t, "0123456789abcdef-secret")
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	rec, err := newRecord(bus.SigningKeyCurrent, k, SourceGenerated, sk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeRecord(bus.SigningKeyPrevious, mustJSON(rec), nil); err == nil || !strings.Contains(err.Error(), "does not name its key") {
		t.Errorf("moved record: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad := *rec
	bad.Kid, _ = Thumbprint(&other.PublicKey)
	if _, err := decodeRecord(bus.SigningKeyCurrent, mustJSON(bad), nil); err == nil || !strings.Contains(err.Error(), "thumbprint") {
		t.Errorf("kid of another key: %v", err)
	}
	if got, err := decodeRecord(bus.SigningKeyCurrent, mustJSON(rec), sk); err != nil || !got.Private.Equal(k) {
		t.Errorf("the registry's record: %v", err)
	}
}

func testSigner(t testing.TB) (*Signer, *rsa.PrivateKey, string) {
	t.Helper()
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	kid, _ := Thumbprint(&k.PublicKey)
	return NewSigner(Settings{Issuer: "https://gw.example.test", Audience: "mcp", TTL: 5 * time.Minute},
		Static(&Key{Kid: kid, Public: &k.PublicKey, Private: k})), k, kid
}

// A signed call carries LiteLLM's claims and mcpbus's, under the key's
// thumbprint; each token is fresh.
func TestSignClaims(t *testing.T) {
	s, k, kid := testSigner(t)
	now := time.Unix(1_700_000_000, 0)
	s.now = func() time.Time { return now }
	call := &Call{Caller: bus.Identity{KeyID: "abc123", User: "alice", Team: "t1", Org: "o1"}, RequestID: "req-1",
		Method: bus.MethodToolsCall, Tool: "echo"}
	tok, err := s.Sign("weather", call)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Headers[0]; h.KeyID != kid || h.ExtraHeaders["typ"] != "JWT" {
		t.Fatalf("header kid %q typ %v", h.KeyID, h.ExtraHeaders["typ"])
	}
	var got map[string]any
	if err := parsed.Claims(&k.PublicKey, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"iss": "https://gw.example.test", "aud": "mcp", "sub": "alice", "act": map[string]any{"sub": "t1"},
		"scope": "mcp:tools/call mcp:tools/echo:call", "iat": 1.7e9, "nbf": 1.7e9, "exp": 1.7e9 + 300, "server": "weather",
		"method": "tools/call", "tool": "echo", "request_id": "req-1", "team_id": "t1", "organization_id": "o1"}
	jti, _ := got["jti"].(string)
	delete(got, "jti")
	if fmt.Sprint(got) != fmt.Sprint(want) || len(jti) < 20 {
		t.Fatalf("claims\n got %v (jti %q)\nwant %v", got, jti, want)
	}
	again, _ := s.Sign("weather", call)
	if again == tok {
		t.Fatal("two calls got the same token")
	}

	// A key without a user: LiteLLM's apikey: subject; no caller: the gateway.
	c := s.Claims("weather", &Call{Caller: bus.Identity{KeyID: "abc123", Org: "o1"}, Method: "resources/read"})
	if !strings.HasPrefix(c.Subject, "apikey:") || len(c.Subject) != 23 || strings.Contains(c.Subject, "abc123") || c.Actor.Subject != "o1" ||
		c.Tool != "" || c.Scope != "mcp:tools/call mcp:tools/list" {
		t.Fatalf("key without user: %+v", c)
	}
	if c := s.Claims("weather", nil); c.Subject != GatewaySubject || c.Actor.Subject != GatewaySubject || c.Method != "" {
		t.Fatalf("no caller: %+v", c)
	}
}

// BenchmarkSign is one signed call's token: claims, JSON, RS256.
func BenchmarkSign(b *testing.B) {
	s, _, _ := testSigner(b)
	call := &Call{Caller: bus.Identity{KeyID: "abc123", User: "alice", Team: "t1"}, RequestID: "req-1", Method: bus.MethodToolsCall, Tool: "echo"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign("weather", call); err != nil {
			b.Fatal(err)
		}
	}
}
