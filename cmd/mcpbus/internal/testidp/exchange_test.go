package testidp

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/oauth"
)

// A confidential client allowed the grant exchanges a user's access token
// for one for another resource, for the same user (RFC 8693); a public
// client, or a client without the grant, cannot.
func TestTokenExchange(t *testing.T) {
	p := StartT(t, Options{
		Users: []User{{ID: "alice", Email: "alice@example.test", Password: "pw", Groups: []string{"eng"}}},
		Clients: []Client{
			{ID: "app", RedirectURIs: []string{"http://127.0.0.1/cb"}},
			{ID: "gw", Secret: "gw-secret", GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}},
			{ID: "other", Secret: "other-secret", GrantTypes: []string{"client_credentials"}},
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := p.AuthorizationCodeFlow(ctx, "app", "http://127.0.0.1:9/cb", "https://gateway.example", "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	md, err := oauth.DiscoverMetadata(ctx, http.DefaultClient, p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	c, err := oauth.ClientFromMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientID, c.ClientSecret, c.Resource = "gw", "gw-secret", "https://upstream.example/mcp"
	out, err := c.Exchange(ctx, tok.AccessToken, "urn:ietf:params:oauth:token-type:access_token", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	v, err := oauth.New([]oauth.Issuer{{Issuer: p.Issuer(), Resource: "https://upstream.example/mcp", JWKSURL: p.JWKSURL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	claims, oe := v.Validate(ctx, out.AccessToken)
	if oe != nil || claims.Subject != "alice" {
		t.Fatalf("the exchanged token: %+v %v", claims, oe)
	}
	if p.Exchanges() != 1 {
		t.Fatalf("%d exchanges counted", p.Exchanges())
	}
	c.ClientID, c.ClientSecret = "other", "other-secret"
	if _, err := c.Exchange(ctx, tok.AccessToken, "urn:ietf:params:oauth:token-type:access_token", time.Now()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("a client without the grant exchanged: %v", err)
	}
}
