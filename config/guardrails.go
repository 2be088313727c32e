package config

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// guardrails, LiteLLM's list of guardrails. mcpbus runs one kind: LiteLLM's
// mcp_jwt_signer ("MCP zero trust", docs/SIGNED_CALLS.md), which makes every
// upstream HTTP request carry a short-lived RS256 JWT signed by the gateway.
// Its entry is read strictly: a key mcpbus does not know, or one of
// LiteLLM's signer settings mcpbus does not implement (required_claims
// would block callers LiteLLM blocks), is an error, so a signer is never
// configured other than as written. Other guardrail kinds are LiteLLM's
// content checks, which mcpbus does not run: they are named in one warning,
// as before this was read.

// SignedCalls is the mcp_jwt_signer guardrail: every upstream HTTP request
// of every http/sse server carries a JWT the gateway signs.
type SignedCalls struct {
	// Name is the entry's guardrail_name.
	Name string
	// Issuer is the JWT's iss: litellm_params.issuer, else the environment
	// variable MCP_JWT_ISSUER, else DefaultSignedCallsIssuer.
	Issuer string
	// Audience is the JWT's aud: litellm_params.audience, else
	// MCP_JWT_AUDIENCE, else "mcp" (LiteLLM's default).
	Audience string
	// TTL is how long a token is valid: ttl_seconds, else
	// MCP_JWT_TTL_SECONDS, else 300 s; 10 s to 1 h.
	TTL time.Duration
	// Key is the signing key the environment variable MCP_JWT_SIGNING_KEY
	// gives (a PEM, or file:///path to one); nil: the gateway makes one and
	// keeps it in the bus (internal/signing). Never printed (String).
	Key *rsa.PrivateKey `json:"-"`
}

// String describes the settings, leaving the key out.
func (sc SignedCalls) String() string {
	key := "generated"
	if sc.Key != nil {
		key = SigningKeyEnv
	}
	return "mcp_jwt_signer " + strconv.Quote(sc.Name) + ": issuer " + strconv.Quote(sc.Issuer) + ", audience " +
		strconv.Quote(sc.Audience) + ", ttl " + sc.TTL.String() + ", key " + key
}

// Signed calls' defaults and bounds.
const (
	DefaultSignedCallsIssuer   = "mcpbus"
	DefaultSignedCallsAudience = "mcp"
	DefaultSignedCallsTTL      = 300 * time.Second
	MinSignedCallsTTL          = 10 * time.Second
	MaxSignedCallsTTL          = time.Hour
	// SigningKeyEnv holds the operator's signing key (LiteLLM's name).
	SigningKeyEnv = "MCP_JWT_SIGNING_KEY"
	// minSigningKeyBits: a shorter RSA key is refused.
	minSigningKeyBits = 2048
)

var (
	guardrailKeys     = []string{"guardrail_name", "litellm_params"}
	litellmGuardKeys  = []string{"guardrail_info"}
	signerParamKeys   = []string{"guardrail", "mode", "default_on", "issuer", "audience", "ttl_seconds"}
	litellmSignerKeys = []string{"access_token_discovery_uri", "verify_issuer", "verify_audience", "end_user_claim_sources",
		"token_introspection_endpoint", "required_claims", "optional_claims", "add_claims", "set_claims", "remove_claims",
		"channel_token_audience", "channel_token_ttl", "allowed_scopes", "debug_headers"}
)

// readGuardrails reads the guardrails list: the mcp_jwt_signer entry, if
// any, into f.SignedCalls; the names of the others into one warning.
func (f *File) readGuardrails(p *problems, n *yaml.Node, env LookupEnv) {
	if isNull(n) {
		return
	}
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf("guardrails", "must be a list of guardrails (guardrail_name, litellm_params)")
		return
	}
	var ignored []string
	signer := ""
	for i, item := range dn.Content {
		at := "guardrails[" + strconv.Itoa(i) + "]"
		name, kind, params := guardrailEntry(item)
		if strings.HasPrefix(kind, "mcpbus_") { // guards.go
			if g, ok := readGuard(p, at, item, params, kind, env); ok {
				if slices.ContainsFunc(f.Guards, func(o Guard) bool { return o.Name == g.Name }) {
					p.errorf(at+".guardrail_name", strconv.Quote(g.Name)+" names another guard too: servers name guards by it")
				}
				f.Guards = append(f.Guards, g)
			}
			continue
		}
		if kind != "mcp_jwt_signer" {
			ignored = append(ignored, strconv.Quote(name)+" ("+kind+")")
			continue
		}
		if signer != "" {
			p.errorf(at, "a second mcp_jwt_signer (the first is "+signer+"): the gateway has one signing identity; keep one")
			continue
		}
		signer = at
		f.SignedCalls = readSigner(p, at, item, params, env)
	}
	if len(ignored) > 0 {
		p.warn("guardrails", "ignoring LiteLLM guardrails mcpbus does not run: "+strings.Join(ignored, ", "))
	}
}

// guardrailEntry is what an entry says it is, read leniently: only an
// mcp_jwt_signer entry is checked further.
func guardrailEntry(n *yaml.Node) (name, kind string, params *yaml.Node) {
	kind = "unknown kind"
	for _, kv := range pairs(n) {
		switch kv.key {
		case "guardrail_name":
			if v := deref(kv.val); v != nil && v.Kind == yaml.ScalarNode {
				name = v.Value
			}
		case "litellm_params":
			params = kv.val
			for _, pv := range pairs(kv.val) {
				if v := deref(pv.val); pv.key == "guardrail" && v != nil && v.Kind == yaml.ScalarNode {
					kind = v.Value
				}
			}
		}
	}
	return name, kind, params
}

// readSigner reads an mcp_jwt_signer entry; nil when it has errors or does
// not apply (default_on is not true).
func readSigner(p *problems, at string, entry, params *yaml.Node, env LookupEnv) *SignedCalls {
	errs := len(p.errs)
	var unused []string
	sc := &SignedCalls{}
	for _, kv := range pairs(entry) {
		switch kv.key {
		case "guardrail_name":
			sc.Name, _ = p.str(at+".guardrail_name", kv.val)
		case "litellm_params":
		default:
			unused = append(unused, kv.key)
		}
	}
	strictUnknown(p, at, unused, guardrailKeys, litellmGuardKeys)
	if sc.Name == "" {
		p.errorf(at+".guardrail_name", "is required")
	}
	at += ".litellm_params"
	var mode string
	var on, ttlSet bool
	unused = nil
	for _, kv := range pairs(params) {
		path := at + "." + kv.key
		switch kv.key {
		case "guardrail":
		case "mode":
			mode, _ = p.str(path, kv.val)
		case "default_on":
			on = p.boolean(path, kv.val, env)
		case "issuer":
			sc.Issuer = p.resolved(path, kv.val, env)
		case "audience":
			sc.Audience = p.resolved(path, kv.val, env)
		case "ttl_seconds":
			sc.TTL, ttlSet = p.signerTTL(path, p.resolved(path, kv.val, env)), true
		default:
			unused = append(unused, kv.key)
		}
	}
	strictUnknown(p, at, unused, signerParamKeys, litellmSignerKeys)
	if mode != "pre_mcp_call" {
		p.errorf(at+".mode", `must be "pre_mcp_call" (the signer runs before each MCP call, as in LiteLLM)`)
	}
	sc.applyEnvDefaults(p, env, ttlSet)
	sc.Key = readSigningKey(p, env)
	if len(p.errs) > errs {
		return nil
	}
	if !on {
		// LiteLLM runs a guardrail without default_on only for the requests
		// that name it; mcpbus has no per-request guardrails.
		p.warn(at+".default_on", "is not true: calls are not signed (mcpbus has no per-request guardrails; set default_on: true to sign every upstream request)")
		return nil
	}
	return sc
}

// applyEnvDefaults fills what the entry left unset from LiteLLM's
// variables, then the defaults.
func (sc *SignedCalls) applyEnvDefaults(p *problems, env LookupEnv, ttlSet bool) {
	if v, ok := env("MCP_JWT_ISSUER"); ok && sc.Issuer == "" {
		sc.Issuer = v
	}
	if v, ok := env("MCP_JWT_AUDIENCE"); ok && sc.Audience == "" {
		sc.Audience = v
	}
	if v, ok := env("MCP_JWT_TTL_SECONDS"); ok && !ttlSet {
		sc.TTL, ttlSet = p.signerTTL("environment variable MCP_JWT_TTL_SECONDS", v), true
	}
	if sc.Issuer == "" {
		sc.Issuer = DefaultSignedCallsIssuer
	}
	if sc.Audience == "" {
		sc.Audience = DefaultSignedCallsAudience
	}
	if !ttlSet {
		sc.TTL = DefaultSignedCallsTTL
	}
}

// strictUnknown makes every unknown key an error: a did-you-mean for a near
// miss, LiteLLM's own keys named as not implemented.
func strictUnknown(p *problems, at string, unused, known, litellm []string) {
	for _, k := range unused {
		switch near := nearest(k, known); {
		case near != "":
			p.errorf(joinPath(at, k), "unknown key; did you mean "+strconv.Quote(near)+"?")
		case slices.Contains(litellm, k):
			p.errorf(joinPath(at, k), "a LiteLLM setting mcpbus does not implement; remove it (docs/SIGNED_CALLS.md)")
		default:
			p.errorf(joinPath(at, k), "unknown key")
		}
	}
}

// resolved reads a string that may be an os.environ/ reference.
func (p *problems) resolved(path string, n *yaml.Node, env LookupEnv) string {
	if isNull(n) {
		p.errorf(path, "must not be empty")
		return ""
	}
	errs := len(p.errs)
	v := readString(p, path, n, env) // jwtauth.go
	if v == "" && len(p.errs) == errs {
		p.errorf(path, "must not be empty")
	}
	return v
}

// signerTTL reads ttl_seconds: whole seconds within the bounds.
func (p *problems) signerTTL(path, s string) time.Duration {
	if s == "" {
		return 0 // resolved said why
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < int(MinSignedCallsTTL/time.Second) || v > int(MaxSignedCallsTTL/time.Second) {
		p.errorf(path, "must be a whole number of seconds from "+strconv.Itoa(int(MinSignedCallsTTL/time.Second))+
			" to "+strconv.Itoa(int(MaxSignedCallsTTL/time.Second)))
		return 0
	}
	return time.Duration(v) * time.Second
}

// readSigningKey reads MCP_JWT_SIGNING_KEY when set; errors name the
// variable and what is wrong, never the key or the file's content.
func readSigningKey(p *problems, env LookupEnv) *rsa.PrivateKey {
	v, ok := env(SigningKeyEnv)
	if !ok {
		return nil
	}
	path := "environment variable " + SigningKeyEnv
	k, err := ParseSigningKey(v)
	if err != nil {
		p.errorf(path, err.Error())
		return nil
	}
	return k
}

// ParseSigningKey reads an RSA private key (PKCS#1 or PKCS#8 PEM) given
// as its PEM text (literal \n accepted for line breaks) or as file:///path.
// Errors say what is wrong, never what the key or file holds.
func ParseSigningKey(v string) (*rsa.PrivateKey, error) {
	data := []byte(v)
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, errors.New("file://" + path + ": " + pe.Err.Error())
			}
			return nil, errors.New("file://" + path + ": cannot be read")
		}
		data = b
	} else if !strings.Contains(v, "\n") {
		data = []byte(strings.ReplaceAll(v, `\n`, "\n"))
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, errors.New("is empty: give an RSA private key in PEM, or file:///path to one")
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("is not a PEM private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----)")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("is not a readable PKCS#1 RSA private key")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("is not a readable PKCS#8 private key")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, errors.New("must be an RSA key: calls are signed with RS256")
		}
		key = rk
	default:
		return nil, errors.New("is a PEM " + strconv.Quote(block.Type) + " block, not an RSA private key (encrypted keys are not supported)")
	}
	if key.N.BitLen() < minSigningKeyBits {
		return nil, errors.New("is an RSA key of " + strconv.Itoa(key.N.BitLen()) + " bits; use 2048 or more")
	}
	return key, nil
}
