package bus

import "time"

// ServerSpec is one upstream MCP server as the operator wrote it: the record the
// registry keeps in the KV bucket BucketServers under the server's name.
//
// Values are kept as written, so an `os.environ/NAME` reference stays a reference:
// secrets that live in the environment never land in the KV store, and each worker
// resolves them in its own process (config.Provision). Field names and JSON tags
// follow LiteLLM's mcp_servers config so records read the same in both.
type ServerSpec struct {
	Name        string `json:"server_name"`
	Alias       string `json:"alias,omitempty"`
	Description string `json:"description,omitempty"`
	URL         string `json:"url,omitempty"`
	// Transport is http (Streamable HTTP), sse or stdio.
	Transport   string `json:"transport,omitempty"`
	SpecVersion string `json:"spec_version,omitempty"`

	// AuthType selects the credential header sent upstream:
	// none, api_key, bearer_token, basic, authorization, token.
	AuthType  string `json:"auth_type,omitempty"`
	AuthValue string `json:"auth_value,omitempty"`
	// BYOK is LiteLLM's is_byok: the server has no shared credential; each
	// user stores their own (usercreds.go), sent in AuthType's header on
	// their calls, and a caller without one is refused before the upstream.
	BYOK bool `json:"is_byok,omitempty"`

	// StaticHeaders are always sent upstream; ExtraHeaders names client headers
	// that may be forwarded.
	StaticHeaders map[string]string `json:"static_headers,omitempty"`
	ExtraHeaders  []string          `json:"extra_headers,omitempty"`

	AllowedTools    []string `json:"allowed_tools,omitempty"`
	DisallowedTools []string `json:"disallowed_tools,omitempty"`

	// Public is available_on_public_internet; servers are internal-only by default.
	Public bool `json:"available_on_public_internet"`

	// Unprefixed: on an aggregated endpoint the server's tools and prompts
	// keep their own names (no alias or name prefix); a name another
	// server's item took first gets the collision suffix (router/names.go).
	Unprefixed bool `json:"unprefixed,omitempty"`

	// AccessGroups are LiteLLM's access_groups: a key or team granted one of
	// them (mcp_access_groups) may use this server as if it named it.
	AccessGroups []string `json:"access_groups,omitempty"`

	// Timeout bounds one upstream call, as a Go duration ("30s"); empty means the default.
	Timeout string `json:"timeout,omitempty"`

	// stdio: the command the worker starts and supervises, its arguments and its
	// whole environment (the gateway's own environment is not inherited).
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`

	// oauth2: OAuth2Flow is LiteLLM's oauth2_flow: client_credentials (the
	// default: one token of the gateway's, from token_url) or
	// authorization_code (each user signs in at AuthorizationURL and the
	// gateway keeps their token: useroauth.go). OAuth2Issuer is the
	// authorization server's issuer (RFC 9207's iss check; its metadata
	// gives the endpoints not set); OAuth2Resource the RFC 8707 resource
	// asked for ("" the server's url, "none" none).
	OAuth2Flow       string   `json:"oauth2_flow,omitempty"`
	AuthorizationURL string   `json:"authorization_url,omitempty"`
	TokenURL         string   `json:"token_url,omitempty"`
	OAuth2Issuer     string   `json:"oauth2_issuer,omitempty"`
	OAuth2Resource   string   `json:"oauth2_resource,omitempty"`
	ClientID         string   `json:"client_id,omitempty"`
	ClientSecret     string   `json:"client_secret,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`

	// aws_sigv4: the credentials every upstream request is signed with.
	AWSAccessKeyID     string `json:"aws_access_key_id,omitempty"`
	AWSSecretAccessKey string `json:"aws_secret_access_key,omitempty"`
	AWSSessionToken    string `json:"aws_session_token,omitempty"`
	AWSRegionName      string `json:"aws_region_name,omitempty"`
	AWSServiceName     string `json:"aws_service_name,omitempty"`

	// Resilience, per worker replica: calls beyond MaxConcurrentRequests wait in
	// a queue of at most MaxQueuedRequests; after CircuitBreakerThreshold
	// consecutive failures the server is given CircuitBreakerCooldown (a Go
	// duration) before one probe call is let through.
	MaxConcurrentRequests   int    `json:"max_concurrent_requests,omitempty"`
	MaxQueuedRequests       int    `json:"max_queued_requests,omitempty"`
	CircuitBreakerThreshold int    `json:"circuit_breaker_threshold,omitempty"`
	CircuitBreakerCooldown  string `json:"circuit_breaker_cooldown,omitempty"`

	// CostPerQuery is the cost charged per tools/call, by tool name; the key ""
	// holds the default for tools not listed. In the config file it is LiteLLM's
	// mcp_info.mcp_server_cost_info (or cost_per_query: {default, tools}).
	CostPerQuery map[string]float64 `json:"cost_per_query,omitempty"`

	// Operations (server_ops.go): Drain takes the server's workers off the
	// bus (in-flight calls finish, new ones are refused as drained). A
	// canary is a second upstream of the same server, CanaryURL (stdio:
	// CanaryCommand and CanaryArgs), that gets CanaryPercent of the calls,
	// chosen per downstream session; the stable spec's credentials apply.
	Drain         bool     `json:"drain,omitempty"`
	CanaryURL     string   `json:"canary_url,omitempty"`
	CanaryCommand string   `json:"canary_command,omitempty"`
	CanaryArgs    []string `json:"canary_args,omitempty"`
	CanaryPercent int      `json:"canary_percent,omitempty"`

	// ToolPinning is mcpbus's tool_pinning (pins.go): off (or empty),
	// withhold or flag.
	ToolPinning string `json:"tool_pinning,omitempty"`

	// Guardrails names the guards (the config's guardrails list, by
	// guardrail_name) that run on this server's tools/calls besides those
	// with default_on (guard.go, docs/GUARDS.md).
	Guardrails []string `json:"guardrails,omitempty"`
	// Durable tool calls (tasks.go, docs/TASKS.md): the tools a client may
	// run as tasks ("*": every one; none: tasks off), how long a task is
	// kept, and how many unfinished tasks one caller may have here.
	Tasks         []string `json:"tasks,omitempty"`
	TaskRetention string   `json:"task_retention,omitempty"`
	TaskMaxOpen   int      `json:"task_max_open_per_key,omitempty"`

	// Source says who made the record: "config" (re-applied at every start) or "api".
	Source string `json:"source,omitempty"`

	// timeout is Timeout parsed once, when the record was read from the
	// bucket (DecodeServerRecord), so the hot path does not parse it per call.
	timeout parsedTimeout
}

// parsedTimeout is a Timeout string and what CallTimeout reads it as.
type parsedTimeout struct {
	from string
	d    time.Duration
}

// Redacted returns a copy safe to show to callers: credential values are replaced
// by a marker that says whether one is set, never what it is (ServerFields
// says which fields are credentials).
func (s ServerSpec) Redacted() ServerSpec {
	r := s
	for _, f := range ServerFields {
		switch f.Secrecy {
		case Secret:
			if p := f.Str(&r); *p != "" {
				*p = Redacted
			}
		case SecretURL:
			p := f.Str(&r)
			if IsSealed(*p) {
				*p = Redacted
			} else {
				*p = RedactURL(*p)
			}
		case SecretEach:
			if m := f.Map(&r); len(*m) > 0 {
				red := make(map[string]string, len(*m))
				for k := range *m {
					red[k] = Redacted
				}
				*m = red
			}
		case RedactEach:
			// A caller sees how many there are.
			if l := f.List(&r); len(*l) > 0 {
				red := make([]string, len(*l))
				for i := range red {
					red[i] = Redacted
				}
				*l = red
			}
		}
	}
	return r
}

// Redacted is what a credential reads as in any response or log line.
const Redacted = "[redacted]"

// Prefix is the namespace name of the server's tools and prompts when aggregated.
func (s ServerSpec) Prefix() string {
	if s.Alias != "" {
		return s.Alias
	}
	return s.Name
}

// HeaderAuthType reports whether authType sends a header credential built
// from auth_value (api_key, bearer_token, basic, authorization, token).
func HeaderAuthType(authType string) bool {
	switch authType {
	case "api_key", "bearer_token", "basic", "authorization", "token":
		return true
	}
	return false
}

// UserOAuth reports whether s calls its upstream with each user's own
// OAuth token (auth_type oauth2, oauth2_flow authorization_code: the user
// signs in; token_exchange: the caller's token is exchanged): it has no
// shared token, like is_byok.
func (s ServerSpec) UserOAuth() bool {
	return s.AuthType == "oauth2" && (s.OAuth2Flow == OAuth2FlowAuthorizationCode || s.OAuth2Flow == OAuth2FlowTokenExchange)
}

// The oauth2_flow values.
const (
	OAuth2FlowClientCredentials = "client_credentials"
	OAuth2FlowAuthorizationCode = "authorization_code"
)

// CredentialFromRequest reports whether s takes its credential from each
// request: a header auth_type without an auth_value (LiteLLM's way), the
// value coming in x-mcp-auth (or x-mcp-<server>-<header>).
func (s ServerSpec) CredentialFromRequest() bool {
	return s.AuthValue == "" && HeaderAuthType(s.AuthType)
}
