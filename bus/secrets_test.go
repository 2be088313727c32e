package bus

import (
	"strings"
	"testing"
)

func testSecretKey(t *testing.T, material string) *SecretKey {
	t.Helper()
	k, err := NewSecretKey(material)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealAndOpen(t *testing.T) {
	k := testSecretKey(t, "bus-test-secret-key-0123456789")
	s := ServerSpec{Name: "gh", URL: "https://u:pw@api.example.com/mcp?token=q", AuthValue: "ghp_secret", TokenURL: "https://idp/token?secret=tok-url",
		StaticHeaders: map[string]string{"X-A": "a-secret", "X-Env": "os.environ/X_A"}, ClientSecret: "cs-secret",
		AWSAccessKeyID: "AKIA-secret", AWSSecretAccessKey: "aws-secret", AWSSessionToken: "session-secret",
		Env: map[string]string{"TOKEN": "env-secret"}, Args: []string{"--flag"}, Command: "npx"}
	sealed, err := k.Seal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{sealed.URL, sealed.TokenURL, sealed.AuthValue, sealed.StaticHeaders["X-A"], sealed.ClientSecret, sealed.AWSAccessKeyID,
		sealed.AWSSecretAccessKey, sealed.AWSSessionToken, sealed.Env["TOKEN"]} {
		if !IsSealed(v) || strings.Contains(v, "secret") || strings.Contains(v, "tok-url") {
			t.Errorf("not sealed: %q", v)
		}
	}
	if sealed.StaticHeaders["X-Env"] != "os.environ/X_A" || sealed.Command != "npx" || sealed.Args[0] != "--flag" {
		t.Errorf("references, command and args stay as written: %+v", sealed)
	}
	if s.AuthValue != "ghp_secret" || s.StaticHeaders["X-A"] != "a-secret" {
		t.Error("Seal changed its argument")
	}
	again, _ := k.Seal(s)
	if again.AuthValue != sealed.AuthValue || again.StaticHeaders["X-A"] != sealed.StaticHeaders["X-A"] {
		t.Error("sealing is not deterministic: re-seeding would rewrite every record")
	}
	twice, _ := k.Seal(sealed)
	if twice.AuthValue != sealed.AuthValue {
		t.Error("a sealed value was sealed again")
	}
	opened, err := k.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if opened.URL != s.URL || opened.TokenURL != s.TokenURL || opened.AuthValue != s.AuthValue || opened.StaticHeaders["X-A"] != "a-secret" || opened.Env["TOKEN"] != "env-secret" ||
		opened.AWSSessionToken != "session-secret" || opened.ClientSecret != "cs-secret" {
		t.Errorf("round trip: %+v", opened)
	}
	if r := sealed.Redacted(); r.URL != Redacted || r.AuthValue != Redacted {
		t.Errorf("a sealed record redacts as any other: %+v", r)
	}
}

// A sealed value is bound to its server and field, and opens only with its key.
func TestSealedValuesAreBound(t *testing.T) {
	k := testSecretKey(t, "bus-test-secret-key-0123456789")
	a, _ := k.Seal(ServerSpec{Name: "a", AuthValue: "secret-a", ClientSecret: "secret-c"})
	moved := ServerSpec{Name: "b", AuthValue: a.AuthValue}
	if _, err := k.Open(moved); err == nil || !strings.Contains(err.Error(), `server "b", auth_value`) {
		t.Errorf("a sealed value moved to another server opened: %v", err)
	}
	swapped := ServerSpec{Name: "a", AuthValue: a.ClientSecret}
	if _, err := k.Open(swapped); err == nil {
		t.Error("a sealed value moved to another field opened")
	}
	other := testSecretKey(t, "another-secret-key-0123456789")
	if _, err := other.Open(a); err == nil || !strings.Contains(err.Error(), "MCPBUS_SALT_KEY") {
		t.Errorf("another key opened it: %v", err)
	}
	var none *SecretKey
	if _, err := none.Open(a); err == nil || !strings.Contains(err.Error(), "no key: set MCPBUS_SALT_KEY") {
		t.Errorf("no key: %v", err)
	}
	if _, err := none.Seal(ServerSpec{Name: "x", AuthValue: "plain"}); err == nil || !strings.Contains(err.Error(), `server "x": auth_value would be stored in plain text`) {
		t.Errorf("no key, a literal credential: %v", err)
	}
	if s, err := none.Seal(ServerSpec{Name: "x", AuthValue: "os.environ/X", URL: "https://h/mcp"}); err != nil || s.AuthValue != "os.environ/X" {
		t.Errorf("no key, references only: %v %+v", err, s)
	}
	if _, err := NewSecretKey("short"); err == nil {
		t.Error("a short key was accepted")
	}
	if k, err := SecretKeyFromEnv(func(n string) (string, bool) {
		return map[string]string{"LITELLM_SALT_KEY": "litellm-salt-key-0123456789"}[n], n == "LITELLM_SALT_KEY"
	}); err != nil || k == nil {
		t.Errorf("LiteLLM's salt key: %v %v", k, err)
	}
}

func TestSealToken(t *testing.T) {
	k := testSecretKey(t, "bus-test-secret-key-0123456789")
	v := k.SealToken(BucketOAuthTokens, "gh", "access-token-1")
	if !IsSealed(v) {
		t.Fatal("not sealed")
	}
	if got, err := k.OpenToken(BucketOAuthTokens, "gh", v); err != nil || got != "access-token-1" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k.OpenToken(BucketOAuthTokens, "other", v); err == nil {
		t.Error("a token opened for another server")
	}
}
