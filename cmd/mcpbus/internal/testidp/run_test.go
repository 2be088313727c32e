package testidp

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// `mcpbus dev-idp` refuses bad flags and files, prints its issuer, serves
// the demo users and client, and stops when its context ends.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("users: [{id: a, password: p}]\nclients: [{id: c, redirect_uris: [\"http://127.0.0.1/cb\"]}]\nextra: 1\n"), 0o600)
	noClient := filepath.Join(dir, "noclient.json")
	os.WriteFile(noClient, []byte(`{"users":[{"id":"a","password":"p"}]}`), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "loopback"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"--config", bad}, "extra"},
		{[]string{"--config", noClient}, "at least one user and one client"},
	} {
		if err := Run(context.Background(), c.args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := &bustest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--addr", "127.0.0.1:0", "--access-token-ttl", "2s"}, out, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+) `)
	var issuer string
	for deadline := time.Now().Add(30 * time.Second); issuer == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			issuer = m[1]
		}
	}
	if issuer == "" {
		t.Fatalf("no banner: %q", out.String())
	}
	remote := &IdP{issuer: issuer}
	var md struct {
		Issuer string `json:"issuer"`
	}
	getJSON(t, issuer+"/.well-known/oauth-authorization-server", &md)
	if md.Issuer != issuer {
		t.Errorf("metadata issuer %q, want %q", md.Issuer, issuer)
	}
	tok, err := remote.AuthorizationCodeFlow(context.Background(), "mcp-client", "http://localhost:61234/callback", resource, "bob", "bob-password", "openid", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn > 2 || tok.RefreshToken == "" {
		t.Errorf("demo token %+v, want a 2 s access token and a refresh token", tok)
	}
	if claims, verr := validate(t, remote, resource, tok.AccessToken); verr != nil || claims.Subject != "bob" {
		t.Errorf("demo token: %v %+v", verr, claims)
	}
	if _, err := remote.AuthorizationCodeFlow(context.Background(), "mcp-client", "http://localhost:61234/callback", resource, "bob", "alice-password"); err == nil {
		t.Error("bob signed in with alice's password")
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after its context ended: %v", err)
	}
	done <- nil // for the deferred receive
}

// A config file in YAML (JSON is YAML too) gives the users, clients and
// access token lifetime.
func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idp.yaml")
	os.WriteFile(path, []byte(`users:
  - {id: carol, email: carol@example.test, password: pw, groups: [eng, sre]}
clients:
  - {id: cli, redirect_uris: ["http://127.0.0.1/cb"]}
  - {id: svc, secret: s3, grant_types: [client_credentials]}
access_token_ttl: 2s
`), 0o600)
	opts, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Users) != 1 || opts.Users[0].Email != "carol@example.test" || len(opts.Users[0].Groups) != 2 ||
		len(opts.Clients) != 2 || opts.Clients[1].Secret != "s3" || opts.Clients[1].GrantTypes[0] != "client_credentials" ||
		opts.AccessTokenTTL != 2*time.Second {
		t.Errorf("loaded %+v", opts)
	}
}
