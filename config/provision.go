package config

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// DefaultSpecVersion is the example revision named in spec_version errors. An
// upstream that sets no spec_version is offered the newest revision mcpbus
// speaks and answers with the one it supports (LiteLLM pins 2025-03-26 instead,
// which would hide structuredContent and newer features from its callers).
const DefaultSpecVersion = "2025-03-26"

// Upstream is a ServerSpec resolved and checked: what a worker needs to dial
// the server. It holds credentials (in Header); String, GoString and LogValue
// print header names only, never values.
type Upstream struct {
	Name        string
	Alias       string
	Description string
	URL         *url.URL
	Transport   string // "http" (Streamable HTTP), "sse" or "stdio"
	// CredentialFromRequest: auth_type names a header credential but no
	// auth_value is given, so each request brings it: LiteLLM's x-mcp-auth
	// (sent in auth_type's header) or x-mcp-<server>-<header>.
	CredentialFromRequest bool
	// DetectTransport: the config gave no transport, so the worker tries
	// Streamable HTTP and falls back to the HTTP+SSE transport when the
	// server refuses it (the MCP spec's backwards compatibility).
	DetectTransport bool
	SpecVersion     string
	AuthType        string

	// Header is sent on every upstream request: the credential header for
	// AuthType, then static_headers, which win on conflict. Forwarded client
	// headers (ExtraHeaders) are added by the caller between the two.
	Header http.Header
	// ExtraHeaders are the client header names that may be forwarded, in
	// canonical form.
	ExtraHeaders    []string
	AllowedTools    []string
	DisallowedTools []string
	Public          bool
	// AccessGroups: keys and teams granted one of them may use the server.
	AccessGroups []string
	Timeout      time.Duration

	// stdio: the command, its arguments and its whole environment (KEY=VALUE,
	// resolved). URL is nil for stdio servers.
	Command string
	Args    []string
	Env     []string

	// OAuth2 is set for auth_type oauth2, AWS for aws_sigv4.
	OAuth2 *OAuth2
	AWS    *AWSSigV4

	// MaxConcurrent bounds concurrent calls per worker replica (0: no bound
	// beyond the worker's own); MaxQueued bounds the calls waiting for a slot.
	MaxConcurrent int
	MaxQueued     int
	// After BreakerThreshold consecutive failures the server gets
	// BreakerCooldown before one probe call is let through.
	BreakerThreshold int
	BreakerCooldown  time.Duration

	// CostPerQuery is the cost of one tools/call by tool name, the default
	// under "" (cost.go); nil when the server has no cost.
	CostPerQuery map[string]float64

	// Source is who made the record ("config" or "api").
	Source string
}

// OAuth2 is the client-credentials grant of an auth_type oauth2 server.
type OAuth2 struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
}

// AWSSigV4 are the credentials an aws_sigv4 server's requests are signed with.
type AWSSigV4 struct {
	AccessKeyID, SecretAccessKey, SessionToken, Region, Service string
}

// Resilience defaults.
const (
	DefaultMaxQueued        = 100
	DefaultBreakerThreshold = 5
	DefaultBreakerCooldown  = 30 * time.Second
)

// Prefix is the namespace of the server's tools when aggregated: its alias,
// else its name.
func (u Upstream) Prefix() string {
	if u.Alias != "" {
		return u.Alias
	}
	return u.Name
}

// String describes the upstream without credentials: the URL is redacted and
// headers are listed by name.
func (u Upstream) String() string {
	names := make([]string, 0, len(u.Header))
	for k := range u.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	target := ""
	if u.URL != nil {
		target = bus.RedactURL(u.URL.String())
	}
	return u.Name + " (" + u.Transport + " " + target + ", auth_type " + u.AuthType +
		", headers [" + strings.Join(names, " ") + "], timeout " + u.Timeout.String() + ")"
}

// GoString keeps %#v from printing header values.
func (u Upstream) GoString() string { return "config.Upstream{" + u.String() + "}" }

// LogValue keeps slog from printing header values.
func (u Upstream) LogValue() slog.Value { return slog.StringValue(u.String()) }

// Provision resolves a server's environment references and checks every
// field, returning the typed upstream. Defaults: transport http, auth_type
// none, spec_version empty (negotiate the newest), timeout DefaultTimeout.
//
// On failure the error is an Errors naming each field as
// mcp_servers.<name>.<field>; no message holds a resolved value, an
// auth_value or a header value.
func Provision(spec bus.ServerSpec, env LookupEnv) (*Upstream, error) {
	if env == nil {
		env = noEnv
	}
	base := serverPath(spec.Name)
	var errs Errors
	get := func(field, s string) string {
		v, ferr := resolve(base+"."+field, s, env)
		if ferr != nil {
			errs = append(errs, *ferr)
		}
		return v
	}
	getList := func(field string, in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = get(field+"["+strconv.Itoa(i)+"]", s)
		}
		return out
	}

	c := checked{
		Name:            spec.Name,
		Alias:           get("alias", spec.Alias),
		URL:             get("url", spec.URL),
		Transport:       normalTransport(get("transport", spec.Transport)),
		SpecVersion:     get("spec_version", spec.SpecVersion),
		AuthType:        get("auth_type", spec.AuthType),
		AuthValue:       get("auth_value", spec.AuthValue),
		AuthValueGiven:  spec.AuthValue != "",
		ExtraHeaders:    getList("extra_headers", spec.ExtraHeaders),
		AllowedTools:    getList("allowed_tools", spec.AllowedTools),
		DisallowedTools: getList("disallowed_tools", spec.DisallowedTools),
		Timeout:         DefaultTimeout,
		Command:         get("command", spec.Command),
		TokenURL:        get("token_url", spec.TokenURL),
		ClientID:        get("client_id", spec.ClientID),
		ClientSecret:    get("client_secret", spec.ClientSecret),
		AWSAccessKeyID:  get("aws_access_key_id", spec.AWSAccessKeyID),
		AWSSecret:       get("aws_secret_access_key", spec.AWSSecretAccessKey),
		AWSRegion:       get("aws_region_name", spec.AWSRegionName),
		AWSService:      get("aws_service_name", spec.AWSServiceName),
		BreakerCooldown: DefaultBreakerCooldown,
	}
	args := getList("args", spec.Args)
	scopes := getList("scopes", spec.Scopes)
	sessionToken := get("aws_session_token", spec.AWSSessionToken)
	envKeys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	var childEnv []string
	for _, k := range envKeys {
		childEnv = append(childEnv, k+"="+get("env."+k, spec.Env[k]))
	}
	if t := get("circuit_breaker_cooldown", spec.CircuitBreakerCooldown); t != "" {
		if d, err := parseTimeout(t); err != nil {
			errs = append(errs, FieldError{base + ".circuit_breaker_cooldown", timeoutSyntax})
		} else {
			c.BreakerCooldown = d
		}
	}
	description := get("description", spec.Description)
	if spec.StaticHeaders != nil {
		c.StaticHeaders = make(map[string]string, len(spec.StaticHeaders))
		for k, v := range spec.StaticHeaders {
			c.StaticHeaders[k] = get("static_headers."+k, v)
		}
	}
	detect := c.Transport == ""
	if detect {
		c.Transport = "http"
	}
	if c.AuthType == "" {
		c.AuthType = "none"
	}
	costs, costErrs := checkCosts(base, spec.CostPerQuery)
	errs = append(errs, costErrs...)
	if t := get("timeout", spec.Timeout); t != "" {
		if d, err := parseTimeout(t); err != nil {
			errs = append(errs, FieldError{base + ".timeout", timeoutSyntax})
		} else {
			c.Timeout = d
		}
	}
	if len(errs) > 0 {
		// Values behind missing variables are empty; checking them would
		// only add noise.
		return nil, sortErrors(base, errs)
	}

	_, urlIsRef := EnvRef(spec.URL)
	errs = append(errs, validate(base, &c, !urlIsRef)...)
	if len(errs) > 0 {
		return nil, sortErrors(base, errs)
	}

	var u *url.URL
	if c.Transport != "stdio" {
		u, _ = url.Parse(c.URL) // validated above
	}
	up := &Upstream{
		Name:             c.Name,
		Alias:            c.Alias,
		Description:      description,
		URL:              u,
		Transport:        c.Transport,
		DetectTransport:  detect,
		SpecVersion:      c.SpecVersion,
		AuthType:         c.AuthType,
		Header:           http.Header{},
		AllowedTools:     c.AllowedTools,
		DisallowedTools:  c.DisallowedTools,
		Public:           spec.Public,
		AccessGroups:     slices.Clone(spec.AccessGroups),
		Timeout:          c.Timeout,
		Command:          c.Command,
		Args:             args,
		Env:              childEnv,
		MaxConcurrent:    spec.MaxConcurrentRequests,
		MaxQueued:        spec.MaxQueuedRequests,
		BreakerThreshold: spec.CircuitBreakerThreshold,
		BreakerCooldown:  c.BreakerCooldown,
		CostPerQuery:     costs,
		Source:           spec.Source,
	}
	if up.MaxQueued == 0 {
		up.MaxQueued = DefaultMaxQueued
	}
	if up.BreakerThreshold == 0 {
		up.BreakerThreshold = DefaultBreakerThreshold
	}
	switch c.AuthType {
	case "oauth2":
		up.OAuth2 = &OAuth2{TokenURL: c.TokenURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: scopes}
	case "aws_sigv4":
		up.AWS = &AWSSigV4{AccessKeyID: c.AWSAccessKeyID, SecretAccessKey: c.AWSSecret, SessionToken: sessionToken,
			Region: c.AWSRegion, Service: c.AWSService}
	}
	if !c.AuthValueGiven && bus.HeaderAuthType(c.AuthType) {
		// LiteLLM's way: no auth_value, so each request brings the
		// credential (x-mcp-auth, or x-mcp-<server>-<header>).
		up.CredentialFromRequest = true
	}
	name, val, err := AuthHeader(c.AuthType, c.AuthValue)
	if up.CredentialFromRequest {
		name, err = "", nil
	}
	if err != nil {
		ae := err.(*AuthError)
		return nil, Errors{{base + "." + ae.Field, ae.Msg}}
	}
	if name != "" {
		up.Header.Set(name, val)
	}
	keys := make([]string, 0, len(c.StaticHeaders))
	for k := range c.StaticHeaders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		up.Header.Set(k, c.StaticHeaders[k])
	}
	for _, h := range c.ExtraHeaders {
		up.ExtraHeaders = append(up.ExtraHeaders, http.CanonicalHeaderKey(h))
	}
	return up, nil
}

// fieldOrder is the order in which a server's errors are listed: the order
// an operator usually writes the fields.
var fieldOrder = []string{"alias", "description", "url", "transport", "command", "args", "env", "spec_version", "auth_type",
	"auth_value", "token_url", "client_id", "client_secret", "scopes", "aws_access_key_id", "aws_secret_access_key",
	"aws_session_token", "aws_region_name", "aws_service_name", "static_headers", "extra_headers", "allowed_tools",
	"disallowed_tools", "timeout", "max_concurrent_requests", "max_queued_requests", "circuit_breaker_threshold",
	"circuit_breaker_cooldown"}

// sortErrors orders one server's errors by field, then path, so that output
// is stable (map iteration is not).
func sortErrors(base string, errs Errors) Errors {
	rank := func(path string) int {
		rest := strings.TrimPrefix(strings.TrimPrefix(path, base), ".")
		field := strings.FieldsFunc(rest, func(r rune) bool { return r == '.' || r == '[' })
		if len(field) == 0 {
			return -1 // the server itself: its name
		}
		for i, f := range fieldOrder {
			if f == field[0] {
				return i
			}
		}
		return len(fieldOrder)
	}
	sort.SliceStable(errs, func(i, j int) bool {
		ri, rj := rank(errs[i].Path), rank(errs[j].Path)
		if ri != rj {
			return ri < rj
		}
		return errs[i].Path < errs[j].Path
	})
	return errs
}
