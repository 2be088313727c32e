package registry

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// writeBody is a create or update request as sent: LiteLLM's JSON body of
// POST / PUT /v1/mcp/server, read field by field so that every error names
// its field.
type writeBody struct {
	name     string
	revision *uint64
	fields   map[string]json.RawMessage
}

// parseWriteBody reads the body and the server's name: server_name, else
// server_id (LiteLLM's PUT names the server by server_id; here the id is the
// name), else name.
func parseWriteBody(data []byte) (*writeBody, *bus.Error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "request body must be a JSON object with server_name, url, ...")
	}
	b := &writeBody{fields: fields}
	var names []string
	for _, k := range []string{"server_name", "server_id", "name"} {
		raw, ok := fields[k]
		if !ok || isNull(raw) {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, bus.Errorf(bus.ErrBadRequest, "%s: expected a string, got a JSON %s", k, jsonType(raw))
		}
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	switch len(names) {
	case 0:
		return nil, bus.Errorf(bus.ErrBadRequest, "server_name is required (server_id on update)")
	case 1:
		b.name = names[0]
	default:
		return nil, bus.Errorf(bus.ErrBadRequest, "server_name and server_id disagree (%q, %q): the server's id is its name", names[0], names[1])
	}
	if err := config.CheckServerName(b.name); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "%v", err)
	}
	if raw, ok := fields["revision"]; ok && !isNull(raw) {
		var rev uint64
		if json.Unmarshal(raw, &rev) != nil || rev == 0 {
			return nil, bus.Errorf(bus.ErrBadRequest, "revision: expected a positive whole number (the revision a GET answered)")
		}
		b.revision = &rev
	}
	return b, nil
}

// apply writes the body's fields onto spec: a field sent replaces the
// record's (null clears it), a field not sent is kept, so an update changes
// only what it sends. Keys mcpbus does not use (LiteLLM's mcp_info, ...)
// are ignored and returned; access groups, a limit mcpbus does not enforce
// yet, are refused. env resolves
// available_on_public_internet when it is an os.environ/ reference.
func (b *writeBody) apply(spec *bus.ServerSpec, env config.LookupEnv) (ignored []string, errs config.Errors) {
	r := fieldReader{base: "mcp_servers." + b.name, env: env}
	keys := make([]string, 0, len(b.fields))
	for k := range b.fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := b.fields[k]
		switch k {
		case "server_name", "server_id", "name", "revision", "source":
		case "alias":
			spec.Alias = r.str(k, raw)
		case "description":
			spec.Description = r.str(k, raw)
		case "url":
			spec.URL = r.str(k, raw)
		case "transport":
			spec.Transport = r.str(k, raw)
		case "spec_version":
			spec.SpecVersion = r.str(k, raw)
		case "auth_type":
			spec.AuthType = r.str(k, raw)
		case "auth_value":
			spec.AuthValue = r.str(k, raw)
		case "static_headers":
			spec.StaticHeaders = r.strMap(k, raw)
		case "extra_headers":
			spec.ExtraHeaders = r.strList(k, raw)
		case "allowed_tools":
			spec.AllowedTools = r.strList(k, raw)
		case "disallowed_tools":
			spec.DisallowedTools = r.strList(k, raw)
		case "available_on_public_internet":
			spec.Public = r.boolean(k, raw)
		case "timeout":
			spec.Timeout = r.duration(k, raw)
		case "command":
			spec.Command = r.str(k, raw)
		case "args":
			spec.Args = r.strList(k, raw)
		case "env":
			spec.Env = r.strMap(k, raw)
		case "token_url":
			spec.TokenURL = r.str(k, raw)
		case "client_id":
			spec.ClientID = r.str(k, raw)
		case "client_secret":
			spec.ClientSecret = r.str(k, raw)
		case "scopes":
			spec.Scopes = r.scopes(k, raw)
		case "aws_access_key_id":
			spec.AWSAccessKeyID = r.str(k, raw)
		case "aws_secret_access_key":
			spec.AWSSecretAccessKey = r.str(k, raw)
		case "aws_session_token":
			spec.AWSSessionToken = r.str(k, raw)
		case "aws_region_name":
			spec.AWSRegionName = r.str(k, raw)
		case "aws_service_name":
			spec.AWSServiceName = r.str(k, raw)
		case "max_concurrent_requests":
			spec.MaxConcurrentRequests = r.count(k, raw)
		case "max_queued_requests":
			spec.MaxQueuedRequests = r.count(k, raw)
		case "circuit_breaker_threshold":
			spec.CircuitBreakerThreshold = r.count(k, raw)
		case "circuit_breaker_cooldown":
			spec.CircuitBreakerCooldown = r.duration(k, raw)
		case "access_groups", "mcp_access_groups": // LiteLLM's name, and the keys' spelling
			if spec.AccessGroups != nil {
				r.fail(k, "give the access groups once: access_groups or mcp_access_groups")
				break
			}
			spec.AccessGroups = r.strList(k, raw)
			for _, g := range spec.AccessGroups {
				if !bus.ValidToken(g) {
					r.fail(k, strconv.Quote(bus.Shorten(g, 64))+" is not an access group name: use letters, digits, '-' and '_'")
				}
			}
			if spec.AccessGroups == nil {
				spec.AccessGroups = []string{}
			}
		default:
			ignored = append(ignored, k)
		}
	}
	return ignored, r.errs
}

// normalise applies the config loader's rules: LiteLLM's spellings of
// Streamable HTTP are "http", a command without a transport is stdio, and
// stdio fields are dropped from other transports.
func normalise(s *bus.ServerSpec) {
	switch strings.ToLower(s.Transport) {
	case "streamable-http", "streamable_http", "streamablehttp":
		s.Transport = "http"
	}
	if s.Transport == "" && s.Command != "" {
		s.Transport = "stdio"
	}
	if s.Transport != "stdio" {
		s.Command, s.Args, s.Env = "", nil, nil
	}
}

// fieldReader decodes one JSON value per field, recording a FieldError named
// mcp_servers.<name>.<field> for a value of the wrong type. Messages name the
// JSON type found, never the value.
type fieldReader struct {
	base string
	env  config.LookupEnv
	errs config.Errors
}

func (r *fieldReader) fail(key, msg string) {
	r.errs = append(r.errs, config.FieldError{Path: r.base + "." + key, Msg: msg})
}

func (r *fieldReader) wrongType(key, want string, raw json.RawMessage) {
	r.fail(key, "expected "+want+", got a JSON "+jsonType(raw))
}

func (r *fieldReader) str(key string, raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.wrongType(key, "a string", raw)
	}
	return s
}

func (r *fieldReader) strList(key string, raw json.RawMessage) []string {
	if isNull(raw) {
		return nil
	}
	var l []string
	if json.Unmarshal(raw, &l) != nil {
		r.wrongType(key, "a list of strings", raw)
		return nil
	}
	return l
}

func (r *fieldReader) strMap(key string, raw json.RawMessage) map[string]string {
	if isNull(raw) {
		return nil
	}
	var m map[string]string
	if json.Unmarshal(raw, &m) != nil {
		r.wrongType(key, "an object of strings", raw)
		return nil
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// scopes is a list, or one space-separated string as OAuth2 writes them.
func (r *fieldReader) scopes(key string, raw json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.Fields(s)
	}
	return r.strList(key, raw)
}

func (r *fieldReader) count(key string, raw json.RawMessage) int {
	if isNull(raw) {
		return 0
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if d.Decode(&n) != nil {
		r.wrongType(key, "a whole number", raw)
		return 0
	}
	v, err := strconv.Atoi(n.String())
	if err != nil || v < 0 {
		r.fail(key, "must be a whole number, 0 or more")
		return 0
	}
	return v
}

// boolean is true/false, or a string strconv.ParseBool reads (possibly an
// os.environ/ reference, resolved now: the record holds a bool).
func (r *fieldReader) boolean(key string, raw json.RawMessage) bool {
	if isNull(raw) {
		return false
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.wrongType(key, "true or false", raw)
		return false
	}
	if name, ref := config.EnvRef(s); ref {
		v, ok := r.env(name)
		if !ok || name == "" {
			r.fail(key, "environment variable "+name+" is not set")
			return false
		}
		s = v
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		r.fail(key, "must be true or false")
	}
	return b
}

// duration reads a number of seconds or a string (seconds, a Go duration or
// an os.environ/ reference) and keeps it as the config loader does: a Go
// duration string, or the reference as written. A string that reads as
// neither is kept for config.Provision to report with the config file's
// message.
func (r *fieldReader) duration(key string, raw json.RawMessage) string {
	if isNull(raw) {
		return ""
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return secondsString(f)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		r.wrongType(key, `a number of seconds or a duration such as "30s"`, raw)
		return ""
	}
	s = strings.TrimSpace(s)
	if _, ref := config.EnvRef(s); ref || s == "" {
		return s
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return secondsString(f)
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d.String()
	}
	return s
}

func secondsString(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
		return strconv.FormatFloat(f, 'g', -1, 64) // out of range: Provision says so
	}
	return time.Duration(f * float64(time.Second)).String()
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// jsonType names the JSON type of raw for an error message.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
