package testidp

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// registerPath is the dynamic client registration endpoint (RFC 7591).
// zitadel/oidc's op has none; this one is open (no initial access token),
// as MCP clients expect of a local test server.
const registerPath = "/register"

// registration is the client metadata RFC 7591 section 2 defines, the
// part this IdP uses.
type registration struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
}

type registered struct {
	registration
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
}

func registrationError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// register adds a client: public with token_endpoint_auth_method "none",
// confidential (a secret is issued) with client_secret_basic or
// client_secret_post.
func (s *storage) register(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "register: POST a JSON client metadata document", http.StatusMethodNotAllowed)
		return
	}
	var md registration
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&md); err != nil {
		registrationError(w, "invalid_client_metadata", "the body is not a JSON client metadata document")
		return
	}
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = string(oidc.AuthMethodBasic) // RFC 7591's default
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{string(oidc.GrantTypeCode)}
	}
	if len(md.ResponseTypes) == 0 {
		md.ResponseTypes = []string{string(oidc.ResponseTypeCode)}
	}
	if !slices.Equal(md.ResponseTypes, []string{string(oidc.ResponseTypeCode)}) {
		registrationError(w, "invalid_client_metadata", `response_types must be ["code"]`)
		return
	}
	c := Client{ID: "dyn-" + randomID(), RedirectURIs: md.RedirectURIs, GrantTypes: md.GrantTypes}
	switch oidc.AuthMethod(md.TokenEndpointAuthMethod) {
	case oidc.AuthMethodNone:
		if err := checkPublicRedirects(md.RedirectURIs); err != nil {
			registrationError(w, "invalid_redirect_uri", err.Error())
			return
		}
	case oidc.AuthMethodBasic, oidc.AuthMethodPost:
		c.Secret = randomID() + randomID()
	default:
		registrationError(w, "invalid_client_metadata", "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
		return
	}
	cl, err := newClient(c)
	if err != nil {
		code := "invalid_client_metadata"
		if strings.Contains(err.Error(), "redirect") {
			code = "invalid_redirect_uri"
		}
		registrationError(w, code, err.Error())
		return
	}
	s.mu.Lock()
	if len(s.clients) >= s.maxRegistrations {
		s.mu.Unlock()
		registrationError(w, "invalid_client_metadata", fmt.Sprintf("this test IdP holds at most %d clients", s.maxRegistrations))
		return
	}
	s.clients[cl.id] = cl
	issued := s.now().Unix()
	s.mu.Unlock()

	out := registered{registration: md, ClientID: cl.id, ClientSecret: cl.secret, ClientIDIssuedAt: issued}
	if cl.secret != "" {
		never := int64(0)
		out.ClientSecretExpiresAt = &never
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(out)
}

// checkPublicRedirects allows a public client loopback http redirects,
// https ones and private-use schemes (RFC 8252, section 7), never plain
// http to another host.
func checkPublicRedirects(uris []string) error {
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() {
			return fmt.Errorf("redirect URI %q is not an absolute URI", u)
		}
		if p.Scheme != "http" {
			continue
		}
		host := p.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("redirect URI %q: http is allowed for loopback hosts only", u)
		}
	}
	return nil
}
