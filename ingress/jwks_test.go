package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/nats-io/nats.go/jetstream"
)

// The JWKS is served to anyone, on an ingress of any route families (an
// upstream calls none of its routes): 404 while signed calls are off, then
// the registry's public key, cacheable, with no private part.
func TestJWKS(t *testing.T) {
	ns := bustest.Server(t)
	g := metricsIngress(t, Options{NC: bustest.Conn(t, ns), Routes: []bus.RouteFamily{bus.RoutesAdmin}})
	const external = "203.0.113.9:1234"

	w := serve(g, "GET", JWKSPath, external, nil, "")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "signed calls are off") {
		t.Fatalf("off: HTTP %d %s; want 404 saying signed calls are off", w.Code, w.Body)
	}

	// The registry makes the key.
	js, err := jetstream.New(bustest.Conn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := bus.EnsureSigningKeyBucket(context.Background(), js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := bus.NewSecretKey("0123456789abcdef-secret")
	key, err := signing.Ensure(context.Background(), kv, sk, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	w = serve(g, "GET", JWKSPath, external, nil, "")
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "public, max-age=300" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("on: HTTP %d, Cache-Control %q, Content-Type %q: %s", w.Code, w.Header().Get("Cache-Control"), w.Header().Get("Content-Type"), w.Body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(w.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", w.Body, err)
	}
	if k := set.Keys[0]; k.KeyID != key.Kid || !k.IsPublic() || k.Algorithm != "RS256" || k.Use != "sig" || strings.Contains(w.Body.String(), `"d"`) {
		t.Fatalf("key %+v: want the public RS256 signing key %s", k, key.Kid)
	}
}
