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

// discoverJWKS finds an issuer's key set through its metadata: OpenID
// Connect discovery (<issuer>/.well-known/openid-configuration), then RFC
// 8414's (/.well-known/oauth-authorization-server inserted before the
// issuer's path). A document is used only if its "issuer" is the issuer
// exactly (RFC 8414 §3.3), and its jwks_uri only if it is https, or http on
// loopback like the issuer.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("issuer %q is not a URL, so its keys cannot be discovered: set jwks_url", shorten(issuer))
	}
	path := strings.TrimRight(u.Path, "/")
	candidates := []string{
		u.Scheme + "://" + u.Host + path + "/.well-known/openid-configuration",
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
	}
	var reasons []string
	for _, c := range candidates {
		jwks, err := readJWKSURI(ctx, client, c, issuer)
		if err == nil {
			return jwks, nil
		}
		reasons = append(reasons, err.Error())
	}
	return "", fmt.Errorf("the issuer's keys cannot be discovered (%s): set jwks_url", strings.Join(reasons, "; "))
}

func readJWKSURI(ctx context.Context, client *http.Client, docURL, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, docURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: unreachable", docURL)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d", docURL, resp.StatusCode)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, discoveryMaxBytes)).Decode(&doc); err != nil {
		return "", fmt.Errorf("%s: not a metadata document", docURL)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("%s: names issuer %q, not %q", docURL, shorten(doc.Issuer), shorten(issuer))
	}
	j, err := url.Parse(doc.JWKSURI)
	if err != nil || j.Host == "" || (j.Scheme != "https" && !(j.Scheme == "http" && strings.HasPrefix(issuer, "http://"))) {
		return "", fmt.Errorf("%s: jwks_uri %q is not an https URL", docURL, shorten(doc.JWKSURI))
	}
	return doc.JWKSURI, nil
}
