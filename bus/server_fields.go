package bus

import (
	"maps"
	"slices"
)

// The fields of a server record, in one table. The config loader
// (config.readServer), the registry's API bodies (registry.apply), the
// environment resolution and checks (config.Provision), redaction in answers
// (ServerSpec.Redacted, the registry's keepRedacted), sealing at rest
// (secrets.go), the order of errors and the list of known keys all walk
// ServerFields, so a field added here is read, resolved, redacted and sealed
// everywhere at once. docs/CONFIG.md's "Server keys" table is checked against
// it (config's TestConfigDocListsEveryServerField).

// FieldKind is how a field is written, in YAML and in JSON alike.
type FieldKind int

const (
	KindString   FieldKind = iota // a string
	KindDuration                  // seconds or a Go duration, kept as a Go duration string
	KindList                      // a list of strings
	KindScopes                    // a list of strings, or one space-separated string (OAuth2 scopes)
	KindMap                       // an object of strings
	KindBool                      // true or false, or a string that reads as one (an os.environ/ reference too)
	KindCount                     // a whole number, 0 or more
	KindGroups                    // a list of access group names (tokens)
	KindCost                      // a cost per query (config.readMCPInfo / readCostPerQuery)
)

// Secrecy says what a field's value reveals and so how it is kept.
type Secrecy int

const (
	// Plain: shown as it is, stored as it is.
	Plain Secrecy = iota
	// Secret: a credential. Shown as Redacted when set; sealed at rest.
	Secret
	// SecretURL: a URL whose user or query can carry a credential. Shown
	// through RedactURL; sealed at rest when it carries one.
	SecretURL
	// SecretEach: every value of the map is a credential (header values,
	// a child's environment). Each is shown as Redacted and sealed at rest.
	SecretEach
	// RedactEach: every item of the list is shown as Redacted (arguments can
	// carry --token x) but stored as it is: it says what runs.
	RedactEach
)

// ServerField is one field of ServerSpec: its name in the config file and in
// JSON, how it is written, whether it is a secret, and where it lives.
type ServerField struct {
	Name string
	// Aliases are other spellings that mean the field (LiteLLM's and the
	// keys'); a server gives one of them.
	Aliases []string
	Kind    FieldKind
	Secrecy Secrecy
	// Stdio: only used with transport stdio (dropped, with a warning, from
	// other transports).
	Stdio bool
	// Resolved: an os.environ/NAME reference in it is resolved by each
	// worker (config.Provision), per string, list item or map value.
	Resolved bool
	// Operation: runtime state the operations API sets (drain, canary;
	// server_ops.go). A config file's restart keeps the stored value of an
	// operation field the file leaves unset (registry.Seed).
	Operation bool

	str   func(*ServerSpec) *string
	list  func(*ServerSpec) *[]string
	dict  func(*ServerSpec) *map[string]string
	flag  func(*ServerSpec) *bool
	count func(*ServerSpec) *int
	cost  func(*ServerSpec) *map[string]float64
}

// Str is where a KindString or KindDuration field lives in s; nil for other kinds.
func (f ServerField) Str(s *ServerSpec) *string { return fieldAt(f.str, s) }

// List is where a KindList, KindScopes or KindGroups field lives in s.
func (f ServerField) List(s *ServerSpec) *[]string { return fieldAt(f.list, s) }

// Map is where a KindMap field lives in s.
func (f ServerField) Map(s *ServerSpec) *map[string]string { return fieldAt(f.dict, s) }

// Bool is where a KindBool field lives in s.
func (f ServerField) Bool(s *ServerSpec) *bool { return fieldAt(f.flag, s) }

// Count is where a KindCount field lives in s.
func (f ServerField) Count(s *ServerSpec) *int { return fieldAt(f.count, s) }

// Cost is where a KindCost field lives in s.
func (f ServerField) Cost(s *ServerSpec) *map[string]float64 { return fieldAt(f.cost, s) }

func fieldAt[T any](fn func(*ServerSpec) *T, s *ServerSpec) *T {
	if fn == nil {
		return nil
	}
	return fn(s)
}

// FieldValue is one value as written (a YAML node, a JSON value), read as
// each kind; a reader records its own errors and returns the zero value.
type FieldValue interface {
	String() string
	Duration() string // a Go duration string, or an os.environ/ reference as written
	List() []string
	Scopes() []string
	Map() map[string]string
	Bool() bool
	Count() int
	Groups() []string
}

// Set reads v as f's kind and stores it in s. A KindCost field is its
// reader's to parse (its shapes are the config file's); Set leaves it.
func (f ServerField) Set(s *ServerSpec, v FieldValue) {
	switch f.Kind {
	case KindString:
		*f.Str(s) = v.String()
	case KindDuration:
		*f.Str(s) = v.Duration()
	case KindList:
		*f.List(s) = v.List()
	case KindScopes:
		*f.List(s) = v.Scopes()
	case KindMap:
		*f.Map(s) = v.Map()
	case KindBool:
		*f.Bool(s) = v.Bool()
	case KindCount:
		*f.Count(s) = v.Count()
	case KindGroups:
		*f.List(s) = v.Groups()
	}
}

// Clear sets the field in s to its zero value.
func (f ServerField) Clear(s *ServerSpec) {
	switch {
	case f.str != nil:
		*f.str(s) = ""
	case f.list != nil:
		*f.list(s) = nil
	case f.dict != nil:
		*f.dict(s) = nil
	case f.flag != nil:
		*f.flag(s) = false
	case f.count != nil:
		*f.count(s) = 0
	case f.cost != nil:
		*f.cost(s) = nil
	}
}

// Copy sets f in dst to its value in src.
func (f ServerField) Copy(dst, src *ServerSpec) {
	switch {
	case f.str != nil:
		*f.str(dst) = *f.str(src)
	case f.list != nil:
		*f.list(dst) = slices.Clone(*f.list(src))
	case f.dict != nil:
		*f.dict(dst) = maps.Clone(*f.dict(src))
	case f.flag != nil:
		*f.flag(dst) = *f.flag(src)
	case f.count != nil:
		*f.count(dst) = *f.count(src)
	case f.cost != nil:
		*f.cost(dst) = maps.Clone(*f.cost(src))
	}
}

// IsSet reports whether s gives f a value other than its zero.
func (f ServerField) IsSet(s *ServerSpec) bool {
	switch {
	case f.str != nil:
		return *f.str(s) != ""
	case f.list != nil:
		return len(*f.list(s)) > 0
	case f.dict != nil:
		return len(*f.dict(s)) > 0
	case f.flag != nil:
		return *f.flag(s)
	case f.count != nil:
		return *f.count(s) != 0
	case f.cost != nil:
		return len(*f.cost(s)) > 0
	}
	return false
}

// Names are the field's name and its aliases.
func (f ServerField) Names() []string { return append([]string{f.Name}, f.Aliases...) }

func strField(name string, sec Secrecy, p func(*ServerSpec) *string) ServerField {
	return ServerField{Name: name, Kind: KindString, Secrecy: sec, Resolved: true, str: p}
}

func listField(name string, kind FieldKind, p func(*ServerSpec) *[]string) ServerField {
	return ServerField{Name: name, Kind: kind, Resolved: kind != KindGroups, list: p}
}

func durationField(name string, p func(*ServerSpec) *string) ServerField {
	return ServerField{Name: name, Kind: KindDuration, Resolved: true, str: p}
}

func countField(name string, p func(*ServerSpec) *int) ServerField {
	return ServerField{Name: name, Kind: KindCount, count: p}
}

func stdioOnly(f ServerField) ServerField { f.Stdio = true; return f }

// ServerFields are the fields of a server record other than its name and
// source, in the order an operator usually writes them (errors are listed in
// this order).
var ServerFields = []ServerField{
	strField("alias", Plain, func(s *ServerSpec) *string { return &s.Alias }),
	strField("description", Plain, func(s *ServerSpec) *string { return &s.Description }),
	strField("url", SecretURL, func(s *ServerSpec) *string { return &s.URL }),
	strField("transport", Plain, func(s *ServerSpec) *string { return &s.Transport }),
	stdioOnly(strField("command", Plain, func(s *ServerSpec) *string { return &s.Command })),
	stdioOnly(ServerField{Name: "args", Kind: KindList, Secrecy: RedactEach, Resolved: true,
		list: func(s *ServerSpec) *[]string { return &s.Args }}),
	stdioOnly(ServerField{Name: "env", Kind: KindMap, Secrecy: SecretEach, Resolved: true,
		dict: func(s *ServerSpec) *map[string]string { return &s.Env }}),
	strField("spec_version", Plain, func(s *ServerSpec) *string { return &s.SpecVersion }),
	strField("auth_type", Plain, func(s *ServerSpec) *string { return &s.AuthType }),
	strField("auth_value", Secret, func(s *ServerSpec) *string { return &s.AuthValue }),
	// LiteLLM's bring-your-own-key flag (usercreds.go).
	{Name: "is_byok", Kind: KindBool, flag: func(s *ServerSpec) *bool { return &s.BYOK }},
	strField("oauth2_flow", Plain, func(s *ServerSpec) *string { return &s.OAuth2Flow }),
	strField("authorization_url", SecretURL, func(s *ServerSpec) *string { return &s.AuthorizationURL }),
	strField("token_url", SecretURL, func(s *ServerSpec) *string { return &s.TokenURL }),
	strField("oauth2_issuer", Plain, func(s *ServerSpec) *string { return &s.OAuth2Issuer }),
	strField("oauth2_resource", Plain, func(s *ServerSpec) *string { return &s.OAuth2Resource }),
	strField("client_id", Plain, func(s *ServerSpec) *string { return &s.ClientID }),
	strField("client_secret", Secret, func(s *ServerSpec) *string { return &s.ClientSecret }),
	listField("scopes", KindScopes, func(s *ServerSpec) *[]string { return &s.Scopes }),
	strField("aws_access_key_id", Secret, func(s *ServerSpec) *string { return &s.AWSAccessKeyID }),
	strField("aws_secret_access_key", Secret, func(s *ServerSpec) *string { return &s.AWSSecretAccessKey }),
	strField("aws_session_token", Secret, func(s *ServerSpec) *string { return &s.AWSSessionToken }),
	strField("aws_region_name", Plain, func(s *ServerSpec) *string { return &s.AWSRegionName }),
	strField("aws_service_name", Plain, func(s *ServerSpec) *string { return &s.AWSServiceName }),
	{Name: "static_headers", Kind: KindMap, Secrecy: SecretEach, Resolved: true,
		dict: func(s *ServerSpec) *map[string]string { return &s.StaticHeaders }},
	listField("extra_headers", KindList, func(s *ServerSpec) *[]string { return &s.ExtraHeaders }),
	listField("allowed_tools", KindList, func(s *ServerSpec) *[]string { return &s.AllowedTools }),
	listField("disallowed_tools", KindList, func(s *ServerSpec) *[]string { return &s.DisallowedTools }),
	durationField("timeout", func(s *ServerSpec) *string { return &s.Timeout }),
	countField("max_concurrent_requests", func(s *ServerSpec) *int { return &s.MaxConcurrentRequests }),
	countField("max_queued_requests", func(s *ServerSpec) *int { return &s.MaxQueuedRequests }),
	countField("circuit_breaker_threshold", func(s *ServerSpec) *int { return &s.CircuitBreakerThreshold }),
	durationField("circuit_breaker_cooldown", func(s *ServerSpec) *string { return &s.CircuitBreakerCooldown }),
	// Resolved when read: the record holds a bool.
	{Name: "available_on_public_internet", Kind: KindBool, flag: func(s *ServerSpec) *bool { return &s.Public }},
	{Name: "unprefixed", Kind: KindBool, flag: func(s *ServerSpec) *bool { return &s.Unprefixed }},
	// LiteLLM's name, and the keys' spelling.
	{Name: "access_groups", Aliases: []string{"mcp_access_groups"}, Kind: KindGroups,
		list: func(s *ServerSpec) *[]string { return &s.AccessGroups }},
	// LiteLLM's mcp_info.mcp_server_cost_info, or cost_per_query: {default, tools}.
	{Name: "cost_per_query", Aliases: []string{"mcp_info"}, Kind: KindCost,
		cost: func(s *ServerSpec) *map[string]float64 { return &s.CostPerQuery }},
	// mcpbus's pinned tool definitions (pins.go): off, withhold or flag.
	{Name: "tool_pinning", Kind: KindString, str: func(s *ServerSpec) *string { return &s.ToolPinning }},
	// The guards on its tools/calls besides default_on ones (guard.go).
	listField("guardrails", KindList, func(s *ServerSpec) *[]string { return &s.Guardrails }),
	// mcpbus's durable tool calls (tasks.go): which tools, retention, open limit.
	{Name: "tasks", Kind: KindList, list: func(s *ServerSpec) *[]string { return &s.Tasks }},
	{Name: "task_retention", Kind: KindDuration, str: func(s *ServerSpec) *string { return &s.TaskRetention }},
	countField("task_max_open_per_key", func(s *ServerSpec) *int { return &s.TaskMaxOpen }),
	// Operations: drain and canary (server_ops.go).
	operation(ServerField{Name: "drain", Kind: KindBool, flag: func(s *ServerSpec) *bool { return &s.Drain }}),
	operation(strField("canary_url", SecretURL, func(s *ServerSpec) *string { return &s.CanaryURL })),
	operation(stdioOnly(strField("canary_command", Plain, func(s *ServerSpec) *string { return &s.CanaryCommand }))),
	operation(stdioOnly(ServerField{Name: "canary_args", Kind: KindList, Secrecy: RedactEach, Resolved: true,
		list: func(s *ServerSpec) *[]string { return &s.CanaryArgs }})),
	operation(countField("canary_percent", func(s *ServerSpec) *int { return &s.CanaryPercent })),
}

func operation(f ServerField) ServerField { f.Operation = true; return f }

var serverFieldByName = func() map[string]int {
	m := map[string]int{}
	for i, f := range ServerFields {
		for _, n := range f.Names() {
			if _, dup := m[n]; dup {
				panic("bus: server field " + n + " is listed twice")
			}
			m[n] = i
		}
	}
	return m
}()

// LookupServerField returns the field a key names (its name or an alias).
func LookupServerField(key string) (ServerField, bool) {
	i, ok := serverFieldByName[key]
	if !ok {
		return ServerField{}, false
	}
	return ServerFields[i], true
}

// ServerFieldRank is the field's place in ServerFields (len(ServerFields)
// for a key that names none), for ordering errors.
func ServerFieldRank(key string) int {
	if i, ok := serverFieldByName[key]; ok {
		return i
	}
	return len(ServerFields)
}
