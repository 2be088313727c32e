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
// are ignored and returned. env resolves
// available_on_public_internet when it is an os.environ/ reference.
func (b *writeBody) apply(spec *bus.ServerSpec, env config.LookupEnv) (ignored []string, errs config.Errors) {
	r := fieldReader{base: "mcp_servers." + b.name, env: env}
	keys := make([]string, 0, len(b.fields))
	for k := range b.fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	given := map[string]string{} // field name -> the key that gave it
	for _, k := range keys {
		raw := b.fields[k]
		f, known := bus.LookupServerField(k)
		switch {
		case k == "server_name" || k == "server_id" || k == "name" || k == "revision" || k == "source":
			continue
		case !known || f.Kind == bus.KindCost: // costs are the config file's, for now
			ignored = append(ignored, k)
			continue
		}
		if first, twice := given[f.Name]; twice {
			r.fail(k, "give the "+strings.ReplaceAll(f.Name, "_", " ")+" once: "+first+" or "+k)
			continue
		}
		given[f.Name] = k
		f.Set(spec, jsonValue{&r, k, raw})
	}
	return ignored, r.errs
}

// jsonValue is a server field's JSON value, read as bus.ServerField.Set asks.
type jsonValue struct {
	r   *fieldReader
	key string
	raw json.RawMessage
}

func (v jsonValue) String() string         { return v.r.str(v.key, v.raw) }
func (v jsonValue) Duration() string       { return v.r.duration(v.key, v.raw) }
func (v jsonValue) List() []string         { return v.r.strList(v.key, v.raw) }
func (v jsonValue) Scopes() []string       { return v.r.scopes(v.key, v.raw) }
func (v jsonValue) Map() map[string]string { return v.r.strMap(v.key, v.raw) }
func (v jsonValue) Bool() bool             { return v.r.boolean(v.key, v.raw) }
func (v jsonValue) Count() int             { return v.r.count(v.key, v.raw) }
func (v jsonValue) Groups() []string       { return v.r.groups(v.key, v.raw) }

// groups reads access group names: tokens, as server names are.
func (r *fieldReader) groups(key string, raw json.RawMessage) []string {
	groups := r.strList(key, raw)
	for _, g := range groups {
		if !bus.ValidToken(g) {
			r.fail(key, strconv.Quote(bus.Shorten(g, 64))+" is not an access group name: use letters, digits, '-' and '_'")
		}
	}
	if groups == nil {
		groups = []string{}
	}
	return groups
}

// normalise applies the config loader's rules: LiteLLM's spellings of
// Streamable HTTP are "http", a command without a transport is stdio, and
// stdio fields are dropped from other transports.
func normalise(s *bus.ServerSpec) {
	s.Transport = config.NormalTransport(s.Transport)
	if s.Transport == "" && s.Command != "" {
		s.Transport = "stdio"
	}
	if s.Transport != "stdio" {
		for _, f := range bus.ServerFields {
			if f.Stdio {
				f.Clear(s)
			}
		}
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
