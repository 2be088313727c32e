package config

import (
	"cmp"
	"log/slog"
	"maps"
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
	// BYOK: is_byok; each user stores the credential (bus/usercreds.go) and
	// the worker sends the caller's (CredentialFromRequest is set too).
	BYOK bool
	// ToolPinning is tool_pinning (bus/pins.go): "" (off), withhold or flag.
	ToolPinning string
	// Guardrails are the guards this server names besides default_on ones
	// (guards.go, docs/GUARDS.md).
	Guardrails []string
	// Tasks: durable tool calls (tasks.go); nil when off.
	Tasks *Tasks
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

	// OAuth2 is set for auth_type oauth2 with the client-credentials grant,
	// UserOAuth for oauth2_flow authorization_code (each user signs in; no
	// shared token), AWS for aws_sigv4.
	OAuth2    *OAuth2
	UserOAuth *UserOAuth
	AWS       *AWSSigV4

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

	// The canary (canary.go): a second upstream of the same server that
	// gets CanaryPercent of the calls; CanaryURL for http and sse,
	// CanaryCommand and CanaryArgs (resolved) for stdio. Drain: the record
	// says the server is drained.
	CanaryURL     *url.URL
	CanaryCommand string
	CanaryArgs    []string
	CanaryPercent int
	Drain         bool

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
	r, errs := resolveFields(base, spec, env)
	c := checked{
		Name:             r.Name,
		Alias:            r.Alias,
		URL:              r.URL,
		Transport:        NormalTransport(r.Transport),
		SpecVersion:      r.SpecVersion,
		AuthType:         r.AuthType,
		AuthValue:        r.AuthValue,
		AuthValueGiven:   spec.AuthValue != "",
		BYOK:             spec.BYOK,
		ExtraHeaders:     r.ExtraHeaders,
		AllowedTools:     r.AllowedTools,
		DisallowedTools:  r.DisallowedTools,
		StaticHeaders:    r.StaticHeaders,
		Command:          r.Command,
		OAuth2Flow:       r.OAuth2Flow,
		AuthorizationURL: r.AuthorizationURL,
		TokenURL:         r.TokenURL,
		OAuth2Issuer:     r.OAuth2Issuer,
		OAuth2Resource:   r.OAuth2Resource,
		ClientID:         r.ClientID,
		ClientSecret:     r.ClientSecret,
		AWSAccessKeyID:   r.AWSAccessKeyID,
		AWSSecret:        r.AWSSecretAccessKey,
		AWSRegion:        r.AWSRegionName,
		AWSService:       r.AWSServiceName,
		Timeout:          durationOr(base, "timeout", r.Timeout, DefaultTimeout, &errs),
		CanaryURL:        r.CanaryURL,
		CanaryPercent:    r.CanaryPercent,
		ToolPinning:      spec.ToolPinning,
		Guardrails:       spec.Guardrails,
		BreakerCooldown:  durationOr(base, "circuit_breaker_cooldown", r.CircuitBreakerCooldown, DefaultBreakerCooldown, &errs),
	}
	if c.Transport == TransportConnector {
		return provisionConnector(base, c, r, spec, errs) // connector.go
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
	tasks, taskErrs := checkTasks(base, spec) // tasks.go
	errs = append(errs, taskErrs...)
	if len(errs) > 0 {
		// Values behind missing variables are empty; checking them would
		// only add noise.
		return nil, sortErrors(base, errs)
	}

	_, urlIsRef := EnvRef(spec.URL)
	errs = append(errs, validate(base, &c, !urlIsRef)...)
	errs = append(errs, checkCanary(base, c.Transport, r)...) // canary.go
	errs = append(errs, checkOAuth2(base, &c)...)             // oauth2_flow.go
	if len(errs) > 0 {
		return nil, sortErrors(base, errs)
	}
	up := upstream(c, r, spec)
	up.DetectTransport = detect
	up.CostPerQuery = costs
	up.Tasks = tasks
	if err := up.setHeaders(c); err != nil {
		return nil, Errors{{base + "." + err.Field, err.Msg}}
	}
	return up, nil
}

// resolveFields returns spec with every environment reference resolved, in
// each field bus.ServerFields marks Resolved, and an error for each
// reference it cannot resolve.
func resolveFields(base string, spec bus.ServerSpec, env LookupEnv) (bus.ServerSpec, Errors) {
	var errs Errors
	get := func(path, s string) string {
		v, ferr := resolve(path, s, env)
		if ferr != nil {
			errs = append(errs, *ferr)
		}
		return v
	}
	r := spec
	for _, f := range bus.ServerFields {
		if !f.Resolved {
			continue
		}
		path := base + "." + f.Name
		switch {
		case f.Str(&r) != nil:
			*f.Str(&r) = get(path, *f.Str(&spec))
		case f.List(&r) != nil && *f.List(&spec) != nil:
			in := *f.List(&spec)
			out := make([]string, len(in))
			for i, s := range in {
				out[i] = get(path+"["+strconv.Itoa(i)+"]", s)
			}
			*f.List(&r) = out
		case f.Map(&r) != nil && *f.Map(&spec) != nil:
			in := *f.Map(&spec)
			out := make(map[string]string, len(in))
			for k, s := range in {
				out[k] = get(path+"."+k, s)
			}
			*f.Map(&r) = out
		}
	}
	return r, errs
}

// durationOr parses a resolved timeout field; def when it is empty.
func durationOr(base, field, s string, def time.Duration, errs *Errors) time.Duration {
	if s == "" {
		return def
	}
	d, err := parseTimeout(s)
	if err != nil {
		*errs = append(*errs, FieldError{base + "." + field, timeoutSyntax})
		return def
	}
	return d
}

// upstream builds the typed upstream from the checked values c, the
// resolved record r and the record as written.
func upstream(c checked, r, spec bus.ServerSpec) *Upstream {
	var u *url.URL
	if c.Transport != "stdio" {
		u, _ = url.Parse(c.URL) // validated
	}
	var childEnv []string
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		childEnv = append(childEnv, k+"="+r.Env[k])
	}
	up := &Upstream{
		Name:             c.Name,
		Alias:            c.Alias,
		Description:      r.Description,
		URL:              u,
		Transport:        c.Transport,
		SpecVersion:      c.SpecVersion,
		AuthType:         c.AuthType,
		Header:           http.Header{},
		AllowedTools:     c.AllowedTools,
		DisallowedTools:  c.DisallowedTools,
		Public:           spec.Public,
		AccessGroups:     slices.Clone(spec.AccessGroups),
		Timeout:          c.Timeout,
		Command:          c.Command,
		Args:             r.Args,
		Env:              childEnv,
		MaxConcurrent:    spec.MaxConcurrentRequests,
		MaxQueued:        cmp.Or(spec.MaxQueuedRequests, DefaultMaxQueued),
		BreakerThreshold: cmp.Or(spec.CircuitBreakerThreshold, DefaultBreakerThreshold),
		BreakerCooldown:  c.BreakerCooldown,
		Source:           spec.Source,
	}
	switch c.AuthType {
	case "oauth2":
		if c.OAuth2Flow == bus.OAuth2FlowAuthorizationCode || c.OAuth2Flow == bus.OAuth2FlowTokenExchange {
			up.UserOAuth = userOAuth(c, r, u) // oauth2_flow.go
			break
		}
		up.OAuth2 = &OAuth2{TokenURL: c.TokenURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: r.Scopes}
	case "aws_sigv4":
		up.AWS = &AWSSigV4{AccessKeyID: c.AWSAccessKeyID, SecretAccessKey: c.AWSSecret, SessionToken: r.AWSSessionToken,
			Region: c.AWSRegion, Service: c.AWSService}
	}
	// LiteLLM's way: no auth_value, so each request brings the credential
	// (x-mcp-auth, or x-mcp-<server>-<header>).
	up.CredentialFromRequest = !c.AuthValueGiven && bus.HeaderAuthType(c.AuthType)
	up.BYOK = c.BYOK
	up.Guardrails = c.Guardrails
	if c.ToolPinning != bus.PinningOff {
		up.ToolPinning = c.ToolPinning
	}
	setCanary(up, r) // canary.go
	return up
}

// setHeaders sets the headers sent on every request: the auth_type's
// credential header (unless each request brings it), then static_headers,
// which win; and the names of the client headers that may be forwarded.
func (up *Upstream) setHeaders(c checked) *AuthError {
	if !up.CredentialFromRequest {
		name, val, err := AuthHeader(c.AuthType, c.AuthValue)
		if err != nil {
			return err.(*AuthError)
		}
		if name != "" {
			up.Header.Set(name, val)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.StaticHeaders)) {
		up.Header.Set(k, c.StaticHeaders[k])
	}
	for _, h := range c.ExtraHeaders {
		up.ExtraHeaders = append(up.ExtraHeaders, http.CanonicalHeaderKey(h))
	}
	return nil
}

// sortErrors orders one server's errors by field, then path, so that output
// is stable (map iteration is not).
func sortErrors(base string, errs Errors) Errors {
	rank := func(path string) int {
		rest := strings.TrimPrefix(strings.TrimPrefix(path, base), ".")
		field := strings.FieldsFunc(rest, func(r rune) bool { return r == '.' || r == '[' })
		if len(field) == 0 {
			return -1 // the server itself: its name
		}
		return bus.ServerFieldRank(field[0]) // the order an operator usually writes them
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
