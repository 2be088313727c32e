package config

import (
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// OAuth is how the gateway accepts OAuth 2.1 access tokens beside its keys
// (the MCP authorization spec): LiteLLM's general_settings.enable_jwt_auth
// and litellm_jwtauth, and mcpbus's general_settings.mcp_oauth for what MCP
// adds (the resource URL clients ask tokens for, the metadata published).
type OAuth struct {
	// Enabled is enable_jwt_auth.
	Enabled bool
	// Resource is mcp_oauth.resource: this gateway's public URL. Tokens must
	// name it, or one of its MCP paths, in aud (RFC 8707); the protected
	// resource metadata (RFC 9728) is published for it.
	Resource string
	// AuthorizationServers is mcp_oauth.authorization_servers: what the
	// metadata tells clients to sign in with; by default every issuer.
	AuthorizationServers []string
	// Scopes is mcp_oauth.scopes_supported, published in the metadata.
	Scopes []string
	// Issuers are the trusted token issuers (litellm_jwtauth.issuers, or the
	// one that JWT_ISSUER, JWT_PUBLIC_KEY_URL and JWT_AUDIENCE describe).
	Issuers []Issuer
	// TeamIDDefault is litellm_jwtauth.team_id_default: the team of a user
	// whose token names none that exists here.
	TeamIDDefault string
	// Introspection is mcp_oauth.introspection: how opaque (non-JWT)
	// tokens are checked (RFC 7662); nil: only JWTs are accepted.
	Introspection *Introspection
	// ClientRegistration is mcp_oauth.client_registration: the dynamic
	// registration shim for providers without it; nil: off.
	ClientRegistration *ClientRegistration
	// UISignIn is mcp_oauth.ui_sign_in: the provider's client the admin UI
	// signs users in with; nil: keys only.
	UISignIn *UISignIn
}

// UISignIn is the UI's client at the provider.
type UISignIn struct {
	ClientID, ClientSecret string
	// Issuer is the provider (default: the only issuer).
	Issuer string
	Scopes []string
}

// ClientRegistration is the provider's public client given to every MCP
// client that registers with the gateway.
type ClientRegistration struct {
	ClientID     string
	RedirectURIs []string
	// Issuer is the provider (default: the only issuer).
	Issuer string
}

// Introspection is an issuer's introspection endpoint and the gateway's
// client credentials there.
type Introspection struct {
	URL, ClientID, ClientSecret string
	// Issuer is the trusted issuer whose tokens these are (default: the
	// only issuer).
	Issuer string
}

// Issuer is one trusted issuer and how its claims map to an identity.
type Issuer struct {
	Issuer string
	// JWKSURL is where its public keys are; empty: found through its
	// discovery document (OpenID Connect or RFC 8414 metadata).
	JWKSURL string
	// Audiences are accepted in aud besides Resource and its paths.
	Audiences  []string
	Algorithms []string
	Claims     ClaimFields
}

// ClaimFields name the claims an identity is read from (dotted paths reach
// into nested objects: "realm_access.roles").
type ClaimFields struct {
	UserID    string // default "sub"
	UserEmail string // default "email"
	TeamIDs   string // a list of team ids, e.g. "groups"
	TeamID    string // a single team id
	OrgID     string
}

// The keys of general_settings.litellm_jwtauth mcpbus reads, per issuer,
// and those LiteLLM has that it does not use.
var (
	jwtClaimKeys  = []string{"user_id_jwt_field", "user_email_jwt_field", "team_ids_jwt_field", "team_id_jwt_field", "org_id_jwt_field"}
	jwtAuthKeys   = append([]string{"issuers", "team_id_default"}, jwtClaimKeys...)
	jwtIssuerKeys = append([]string{"issuer", "audience", "jwks_url", "algorithms"}, jwtClaimKeys...)
	litellmJWT    = []string{"admin_jwt_scope", "admin_allowed_routes", "team_allowed_routes", "user_id_upsert",
		"team_id_upsert", "org_id_upsert", "enforce_team_based_model_access", "enforce_rbac", "enforce_scope_based_access",
		"roles_jwt_field", "user_roles_jwt_field", "user_allowed_roles", "user_allowed_email_domain", "scope_mappings",
		"role_mappings", "jwt_litellm_role_map", "public_key_ttl", "end_user_id_jwt_field", "object_id_jwt_field",
		"team_alias_jwt_field", "org_alias_jwt_field", "team_claim_fallback", "sync_user_role_and_teams",
		"routing_overrides", "virtual_key_claim_field", "virtual_key_mapping_cache_ttl", "oidc_userinfo_enabled",
		"oidc_userinfo_endpoint", "oidc_userinfo_cache_ttl", "custom_validate", "leeway",
		"customer_org_alias_jwt_field", "customer_member_id_jwt_field", "customer_team_id_jwt_field"}
	mcpOAuthKeys      = []string{"resource", "authorization_servers", "scopes_supported", "introspection", "client_registration", "ui_sign_in"}
	uiSignInKeys      = []string{"client_id", "client_secret", "issuer", "scopes"}
	registrationKeys  = []string{"client_id", "redirect_uris", "issuer"}
	introspectionKeys = []string{"url", "client_id", "client_secret", "issuer"}
)

// readOAuth reads the three settings together once general_settings is
// read (any of the nodes may be nil), and checks they make a whole.
func (f *File) readOAuth(p *problems, enabled bool, jwtNode, oauthNode *yaml.Node, env LookupEnv) {
	const base = "general_settings."
	o := OAuth{Enabled: enabled}
	if !isNull(oauthNode) {
		o.readMCP(p, base+"mcp_oauth", oauthNode, env)
	}
	defaults := ClaimFields{UserID: "sub", UserEmail: "email"}
	var issuersNode *yaml.Node
	if !isNull(jwtNode) {
		path := base + "litellm_jwtauth"
		if !isMapping(jwtNode) {
			p.errorf(path, "must be a mapping")
		}
		var unknown []string
		for _, kv := range pairs(jwtNode) {
			kp := path + "." + kv.key
			switch kv.key {
			case "issuers":
				issuersNode = kv.val
			case "team_id_default":
				o.TeamIDDefault = readString(p, kp, kv.val, env)
			default:
				if !readClaimField(p, kp, kv.key, kv.val, env, &defaults) {
					unknown = append(unknown, kv.key)
				}
			}
		}
		reportUnknown(p, path, "", unknown, jwtAuthKeys, litellmJWT)
	}
	if isNull(issuersNode) {
		if enabled {
			o.Issuers = envIssuer(p, env, defaults)
		}
	} else {
		o.Issuers = readIssuers(p, base+"litellm_jwtauth.issuers", issuersNode, env, defaults)
	}
	if !enabled {
		if !isNull(jwtNode) || !isNull(oauthNode) {
			p.warn(base+"enable_jwt_auth", "is not true: litellm_jwtauth and mcp_oauth are read but OAuth access tokens are not accepted")
		}
		o.Issuers = nil
		f.OAuth = o
		return
	}
	if o.Resource == "" {
		p.errorf(base+"mcp_oauth.resource", "is required with enable_jwt_auth: this gateway's public URL (e.g. https://mcp.example.com); tokens must name it in aud (RFC 8707) and clients find how to sign in from it (RFC 9728)")
	}
	if len(o.Issuers) == 0 {
		p.errorf(base+"litellm_jwtauth.issuers", "no issuer is trusted: list issuers (issuer, jwks_url) or set the environment variables JWT_ISSUER and JWT_PUBLIC_KEY_URL")
	}
	if in := o.Introspection; in != nil {
		switch {
		case in.Issuer == "" && len(o.Issuers) == 1:
			in.Issuer = o.Issuers[0].Issuer
		case in.Issuer == "":
			p.errorf(base+"mcp_oauth.introspection.issuer", "is required with several issuers: the issuer whose opaque tokens these are")
		case !slices.ContainsFunc(o.Issuers, func(is Issuer) bool { return is.Issuer == in.Issuer }):
			p.errorf(base+"mcp_oauth.introspection.issuer", "is not one of litellm_jwtauth.issuers")
		}
	}
	if u := o.UISignIn; u != nil {
		switch {
		case u.Issuer == "" && len(o.Issuers) == 1:
			u.Issuer = o.Issuers[0].Issuer
		case u.Issuer == "":
			p.errorf(base+"mcp_oauth.ui_sign_in.issuer", "is required with several issuers: the provider users sign in with")
		case !slices.ContainsFunc(o.Issuers, func(is Issuer) bool { return is.Issuer == u.Issuer }):
			p.errorf(base+"mcp_oauth.ui_sign_in.issuer", "is not one of litellm_jwtauth.issuers")
		}
	}
	if cr := o.ClientRegistration; cr != nil {
		switch {
		case cr.Issuer == "" && len(o.Issuers) == 1:
			cr.Issuer = o.Issuers[0].Issuer
		case cr.Issuer == "":
			p.errorf(base+"mcp_oauth.client_registration.issuer", "is required with several issuers: the provider whose client this is")
		case !slices.ContainsFunc(o.Issuers, func(is Issuer) bool { return is.Issuer == cr.Issuer }):
			p.errorf(base+"mcp_oauth.client_registration.issuer", "is not one of litellm_jwtauth.issuers")
		}
		// The gateway stands in for the provider as the authorization
		// server clients register with.
		if len(o.AuthorizationServers) == 0 && o.Resource != "" {
			o.AuthorizationServers = []string{o.Resource}
		}
	}
	if len(o.AuthorizationServers) == 0 {
		for _, is := range o.Issuers {
			o.AuthorizationServers = append(o.AuthorizationServers, is.Issuer)
		}
	}
	f.OAuth = o
}

func (o *OAuth) readMCP(p *problems, path string, n *yaml.Node, env LookupEnv) {
	if !isMapping(n) {
		p.errorf(path, "must be a mapping")
		return
	}
	var unknown []string
	for _, kv := range pairs(n) {
		kp := path + "." + kv.key
		switch kv.key {
		case "resource":
			o.Resource = strings.TrimRight(readString(p, kp, kv.val, env), "/")
			if o.Resource != "" && !checkURL(p, kp, o.Resource) {
				o.Resource = ""
			}
		case "authorization_servers":
			for _, it := range readStringList(p, kp, kv.val, env) {
				if it.s != "" && checkURL(p, it.path, it.s) {
					o.AuthorizationServers = append(o.AuthorizationServers, it.s)
				}
			}
		case "scopes_supported":
			for _, it := range readStringList(p, kp, kv.val, env) {
				if it.s != "" {
					o.Scopes = append(o.Scopes, it.s)
				}
			}
		case "introspection":
			o.Introspection = readIntrospection(p, kp, kv.val, env)
		case "client_registration":
			o.ClientRegistration = readRegistration(p, kp, kv.val, env)
		case "ui_sign_in":
			o.UISignIn = readUISignIn(p, kp, kv.val, env)
		default:
			unknown = append(unknown, kv.key)
		}
	}
	unknownKeys(p, path, "mcp_oauth", unknown, mcpOAuthKeys)
}

// unknownKeys makes every key of an mcpbus section that was not read an
// error, with a did-you-mean when one is near.
func unknownKeys(p *problems, path, what string, unknown, known []string) {
	for _, k := range unknown {
		msg := "unknown key (" + what + " takes " + strings.Join(known, ", ") + ")"
		if near := nearest(k, known); near != "" {
			msg = "unknown key; did you mean \"" + near + "\"?"
		}
		p.errorf(joinPath(path, k), msg)
	}
}

func readRegistration(p *problems, path string, n *yaml.Node, env LookupEnv) *ClientRegistration {
	if !isMapping(n) {
		p.errorf(path, "must be a mapping (client_id, redirect_uris, issuer)")
		return nil
	}
	cr := &ClientRegistration{}
	var unknown []string
	for _, kv := range pairs(n) {
		kp := path + "." + kv.key
		switch kv.key {
		case "client_id":
			cr.ClientID = readString(p, kp, kv.val, env)
		case "issuer":
			cr.Issuer = readString(p, kp, kv.val, env)
		case "redirect_uris":
			for _, it := range readStringList(p, kp, kv.val, env) {
				if u, err := url.Parse(it.s); err != nil || u.Scheme == "" || u.Host == "" || u.Fragment != "" {
					p.errorf(it.path, "must be an absolute URI without a fragment")
					continue
				}
				cr.RedirectURIs = append(cr.RedirectURIs, it.s)
			}
		default:
			unknown = append(unknown, kv.key)
		}
	}
	unknownKeys(p, path, "client_registration", unknown, registrationKeys)
	if cr.ClientID == "" {
		p.errorf(path+".client_id", "is required: the public client registered at the identity provider for MCP clients")
		return nil
	}
	return cr
}

func readUISignIn(p *problems, path string, n *yaml.Node, env LookupEnv) *UISignIn {
	if !isMapping(n) {
		p.errorf(path, "must be a mapping (client_id, client_secret, issuer, scopes)")
		return nil
	}
	u := &UISignIn{}
	var unknown []string
	for _, kv := range pairs(n) {
		kp := path + "." + kv.key
		switch kv.key {
		case "client_id":
			u.ClientID = readString(p, kp, kv.val, env)
		case "client_secret":
			u.ClientSecret = readString(p, kp, kv.val, env)
		case "issuer":
			u.Issuer = readString(p, kp, kv.val, env)
		case "scopes":
			for _, it := range readStringList(p, kp, kv.val, env) {
				if it.s != "" {
					u.Scopes = append(u.Scopes, it.s)
				}
			}
		default:
			unknown = append(unknown, kv.key)
		}
	}
	unknownKeys(p, path, "ui_sign_in", unknown, uiSignInKeys)
	if u.ClientID == "" {
		p.errorf(path+".client_id", "is required: the client registered at the identity provider for the admin UI, with redirect URI <resource>/ui/oauth/callback")
		return nil
	}
	return u
}

func readIntrospection(p *problems, path string, n *yaml.Node, env LookupEnv) *Introspection {
	if !isMapping(n) {
		p.errorf(path, "must be a mapping (url, client_id, client_secret, issuer)")
		return nil
	}
	in := &Introspection{}
	var unknown []string
	for _, kv := range pairs(n) {
		kp := path + "." + kv.key
		switch kv.key {
		case "url":
			if in.URL = readString(p, kp, kv.val, env); in.URL != "" && !checkURL(p, kp, in.URL) {
				in.URL = ""
			}
		case "client_id":
			in.ClientID = readString(p, kp, kv.val, env)
		case "client_secret":
			in.ClientSecret = readString(p, kp, kv.val, env)
		case "issuer":
			in.Issuer = readString(p, kp, kv.val, env)
		default:
			unknown = append(unknown, kv.key)
		}
	}
	unknownKeys(p, path, "introspection", unknown, introspectionKeys)
	if in.URL == "" || in.ClientID == "" {
		p.errorf(path, "url and client_id are required (the issuer's introspection endpoint and the gateway's client there)")
		return nil
	}
	return in
}

// readClaimField reads one of the *_jwt_field keys into c; false when key
// is none of them.
func readClaimField(p *problems, path, key string, n *yaml.Node, env LookupEnv, c *ClaimFields) bool {
	var into *string
	switch key {
	case "user_id_jwt_field":
		into = &c.UserID
	case "user_email_jwt_field":
		into = &c.UserEmail
	case "team_ids_jwt_field":
		into = &c.TeamIDs
	case "team_id_jwt_field":
		into = &c.TeamID
	case "org_id_jwt_field":
		into = &c.OrgID
	default:
		return false
	}
	if s := readString(p, path, n, env); s != "" {
		*into = s
	}
	return true
}

func readIssuers(p *problems, path string, n *yaml.Node, env LookupEnv, defaults ClaimFields) []Issuer {
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf(path, "must be a list of issuers (issuer, audience, jwks_url, ...)")
		return nil
	}
	var out []Issuer
	for i, item := range dn.Content {
		ip := path + "[" + strconv.Itoa(i) + "]"
		if !isMapping(item) {
			p.errorf(ip, "must be a mapping (issuer, audience, jwks_url, ...)")
			continue
		}
		is := Issuer{Claims: defaults}
		var unknown []string
		for _, kv := range pairs(item) {
			kp := ip + "." + kv.key
			switch kv.key {
			case "issuer":
				is.Issuer = readString(p, kp, kv.val, env)
			case "audience":
				for _, it := range readStringList(p, kp, kv.val, env) {
					if it.s != "" {
						is.Audiences = append(is.Audiences, it.s)
					}
				}
			case "jwks_url":
				if is.JWKSURL = readString(p, kp, kv.val, env); is.JWKSURL != "" && !checkURL(p, kp, is.JWKSURL) {
					is.JWKSURL = ""
				}
			case "algorithms":
				for _, it := range readStringList(p, kp, kv.val, env) {
					is.Algorithms = append(is.Algorithms, it.s)
				}
			case "disable_audience_validation":
				p.errorf(kp, "mcpbus always checks the audience: a token must be for this gateway (mcp_oauth.resource) or name one of the issuer's audience values (RFC 8707)")
			default:
				if !readClaimField(p, kp, kv.key, kv.val, env, &is.Claims) {
					unknown = append(unknown, kv.key)
				}
			}
		}
		unknownKeys(p, ip, "an issuer", unknown, jwtIssuerKeys)
		if is.Issuer == "" {
			p.errorf(ip+".issuer", "is required: the exact iss value of the issuer's tokens")
			continue
		}
		if slices.ContainsFunc(out, func(o Issuer) bool { return o.Issuer == is.Issuer }) {
			p.errorf(ip+".issuer", "is listed twice")
			continue
		}
		out = append(out, is)
	}
	return out
}

// envIssuer is LiteLLM's environment form: one issuer from JWT_ISSUER,
// JWT_PUBLIC_KEY_URL and JWT_AUDIENCE. mcpbus checks every token's iss, so
// JWT_ISSUER is needed beside the key URL.
func envIssuer(p *problems, env LookupEnv, defaults ClaimFields) []Issuer {
	keys, _ := env("JWT_PUBLIC_KEY_URL")
	iss, _ := env("JWT_ISSUER")
	aud, _ := env("JWT_AUDIENCE")
	keys, iss, aud = strings.TrimSpace(keys), strings.TrimSpace(iss), strings.TrimSpace(aud)
	if keys == "" && iss == "" {
		return nil
	}
	if iss == "" {
		p.errorf("environment variable JWT_ISSUER", "is required beside JWT_PUBLIC_KEY_URL: mcpbus checks that every token's iss is its issuer's")
		return nil
	}
	if strings.Contains(keys, ",") {
		p.errorf("environment variable JWT_PUBLIC_KEY_URL", "names several key sets: list each issuer under general_settings.litellm_jwtauth.issuers instead")
		return nil
	}
	if keys != "" && !checkURL(p, "environment variable JWT_PUBLIC_KEY_URL", keys) {
		return nil
	}
	is := Issuer{Issuer: iss, JWKSURL: keys, Claims: defaults}
	for _, a := range strings.Split(aud, ",") {
		if a = strings.TrimSpace(a); a != "" {
			is.Audiences = append(is.Audiences, a)
		}
	}
	return []Issuer{is}
}

func readString(p *problems, path string, n *yaml.Node, env LookupEnv) string {
	s, ok := p.str(path, n)
	if !ok {
		return ""
	}
	v, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return ""
	}
	return strings.TrimSpace(v)
}

// checkURL accepts an absolute https URL, or http on a loopback host (a
// local provider), without a fragment.
func checkURL(p *problems, path, s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		p.errorf(path, "must be an absolute https URL without a fragment")
		return false
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		p.errorf(path, "must use https (http is accepted for localhost and loopback addresses only)")
		return false
	}
	return true
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
