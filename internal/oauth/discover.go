package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// discoveryMaxBytes bounds a discovery document.
const discoveryMaxBytes = 256 << 10

// Metadata is an issuer's authorization-server metadata, as published.
type Metadata map[string]any

// String is the value of a string member, or "".
func (m Metadata) String(k string) string {
	s, _ := m[k].(string)
	return s
}

// DiscoverMetadata reads an issuer's metadata: OpenID Connect discovery
// (<issuer>/.well-known/openid-configuration), then RFC 8414's
// (/.well-known/oauth-authorization-server inserted before the issuer's
// path). A document is used only if its "issuer" is the issuer exactly
// (RFC 8414 §3.3).
func DiscoverMetadata(ctx context.Context, client *http.Client, issuer string) (Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("issuer %q is not a URL, so its metadata cannot be discovered", shorten(issuer))
	}
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	path := strings.TrimRight(u.Path, "/")
	candidates := []string{
		u.Scheme + "://" + u.Host + path + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
	}
	var reasons []string
	for _, c := range candidates {
		md, err := readMetadata(ctx, client, c, issuer)
		if err == nil {
			return md, nil
		}
		reasons = append(reasons, err.Error())
	}
	return nil, fmt.Errorf("the issuer's metadata cannot be discovered (%s)", strings.Join(reasons, "; "))
}

// discoverJWKS finds an issuer's key set through its metadata; its
// jwks_uri is used only if it is https, or http on loopback like the
// issuer.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	md, err := DiscoverMetadata(ctx, client, issuer)
	if err != nil {
		return "", fmt.Errorf("the issuer's keys cannot be discovered: %v: set jwks_url", err)
	}
	jwks := md.String("jwks_uri")
	j, err := url.Parse(jwks)
	if err != nil || j.Host == "" || (j.Scheme != "https" && !(j.Scheme == "http" && strings.HasPrefix(issuer, "http://"))) {
		return "", fmt.Errorf("the issuer's keys cannot be discovered: its jwks_uri %q is not an https URL: set jwks_url", shorten(jwks))
	}
	return jwks, nil
}

func readMetadata(ctx context.Context, client *http.Client, docURL, issuer string) (Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: unreachable", docURL)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", docURL, resp.StatusCode)
	}
	var md Metadata
	if err := json.NewDecoder(io.LimitReader(resp.Body, discoveryMaxBytes)).Decode(&md); err != nil || md == nil {
		return nil, fmt.Errorf("%s: not a metadata document", docURL)
	}
	if got := md.String("issuer"); got != issuer {
		return nil, fmt.Errorf("%s: names issuer %q, not %q", docURL, shorten(got), shorten(issuer))
	}
	return md, nil
}
