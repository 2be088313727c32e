package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const signerYAML = `
guardrails:
  - guardrail_name: mcp-jwt-signer
    litellm_params:
      guardrail: mcp_jwt_signer
      mode: pre_mcp_call
      default_on: true
`

// The signer's settings as written, and LiteLLM's defaults and variables
// where the entry leaves them out.
func TestSignedCallsSettings(t *testing.T) {
	f, err := Parse("c.yaml", []byte(signerYAML+"      issuer: https://gw.example.test\n      audience: os.environ/AUD\n      ttl_seconds: 60\n"),
		mapEnv(map[string]string{"AUD": "weather-mcp"}))
	if err != nil {
		t.Fatal(err)
	}
	want := SignedCalls{Name: "mcp-jwt-signer", Issuer: "https://gw.example.test", Audience: "weather-mcp", TTL: time.Minute}
	if sc := f.SignedCalls; sc == nil || *sc != want {
		t.Fatalf("SignedCalls = %+v, want %+v", sc, want)
	}

	f, err = Parse("c.yaml", []byte(signerYAML), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	want = SignedCalls{Name: "mcp-jwt-signer", Issuer: DefaultSignedCallsIssuer, Audience: "mcp", TTL: 300 * time.Second}
	if sc := f.SignedCalls; sc == nil || *sc != want {
		t.Fatalf("defaults: SignedCalls = %+v, want %+v", sc, want)
	}

	f, err = Parse("c.yaml", []byte(signerYAML), mapEnv(map[string]string{"MCP_JWT_ISSUER": "https://i.test", "MCP_JWT_AUDIENCE": "a", "MCP_JWT_TTL_SECONDS": "30"}))
	if err != nil {
		t.Fatal(err)
	}
	want = SignedCalls{Name: "mcp-jwt-signer", Issuer: "https://i.test", Audience: "a", TTL: 30 * time.Second}
	if sc := f.SignedCalls; sc == nil || *sc != want {
		t.Fatalf("from the environment: SignedCalls = %+v, want %+v", sc, want)
	}

	if f, err := Parse("c.yaml", []byte("mcp_servers: {}\n"), mapEnv(nil)); err != nil || f.SignedCalls != nil {
		t.Fatalf("no guardrails: SignedCalls = %+v, err %v", f.SignedCalls, err)
	}
}

func pemOf(t *testing.T, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

// MCP_JWT_SIGNING_KEY: PKCS#1 or PKCS#8 RSA, as text (real or escaped line
// breaks) or file://; anything else is refused without quoting it.
func TestSigningKeyForms(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(k)
	pkcs1 := pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k))
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, []byte(pemOf(t, "PRIVATE KEY", pkcs8)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{
		"pkcs1":   pkcs1,
		"pkcs8":   pemOf(t, "PRIVATE KEY", pkcs8),
		"escaped": strings.ReplaceAll(pkcs1, "\n", `\n`),
		"file":    "file://" + file,
	} {
		got, err := ParseSigningKey(v)
		if err != nil || !got.Equal(k) {
			t.Errorf("%s: key %v, err %v", name, got != nil, err)
		}
	}

	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, c := range map[string]struct{ v, want string }{
		"ec":      {pemOf(t, "PRIVATE KEY", ecDER), "must be an RSA key"},
		"small":   {pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), "of 1024 bits"},
		"public":  {pemOf(t, "PUBLIC KEY", []byte("SECRET")), `PEM "PUBLIC KEY" block`},
		"garbled": {pemOf(t, "RSA PRIVATE KEY", []byte("SECRET")), "not a readable PKCS#1"},
		"not pem": {"SECRET", "is not a PEM private key"},
		"missing": {"file:///nonexistent/SECRET.pem", "no such file"},
		"empty":   {"  ", "is empty"},
	} {
		_, err := ParseSigningKey(c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to say %q", name, err, c.want)
		}
		if err != nil && strings.Contains(strings.TrimPrefix(err.Error(), "file:///nonexistent/SECRET.pem"), "SECRET") {
			t.Errorf("%s: the error quotes the value: %v", name, err)
		}
	}

	// Through Parse: the variable's name is the path.
	f, err := Parse("c.yaml", []byte(signerYAML), mapEnv(map[string]string{SigningKeyEnv: pkcs1}))
	if err != nil || f.SignedCalls == nil || !f.SignedCalls.Key.Equal(k) {
		t.Fatalf("Parse with the key: %v", err)
	}
	_, err = Parse("c.yaml", []byte(signerYAML), mapEnv(map[string]string{SigningKeyEnv: "file://" + file + ".missing"}))
	if err == nil || !strings.Contains(err.Error(), "environment variable MCP_JWT_SIGNING_KEY: file://") {
		t.Fatalf("Parse with a missing key file: %v", err)
	}
}
