package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// serverNameRE is what a server name (and an alias) must match: the name is a
// NATS subject token, a URL path segment and a tool-name prefix.
var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

const serverNameRule = "must be 1-64 characters of A-Z a-z 0-9 _ - starting with a letter or digit"

func isNameRune(r rune) bool {
	return r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
}

// serverPath is how errors name a server: mcp_servers.github, or
// mcp_servers["bad name"] when the name itself is not a valid name.
func serverPath(name string) string {
	if serverNameRE.MatchString(name) {
		return "mcp_servers." + name
	}
	return "mcp_servers[" + strconv.Quote(name) + "]"
}

// NormalTransport maps LiteLLM's spellings of Streamable HTTP to "http", and
// http, sse and stdio in any case to lower case (LiteLLM compares them so).
func NormalTransport(t string) string {
	switch l := strings.ToLower(strings.TrimSpace(t)); l {
	case "streamable-http", "streamable_http", "streamablehttp":
		return "http"
	case "http", "sse", "stdio", TransportConnector:
		return l // LiteLLM compares case-insensitively: SSE is sse
	}
	return t
}

// readServers reads mcp_servers in either shape LiteLLM accepts: a mapping
// keyed by server name, or a list of mappings naming themselves with
// server_name (or name). Each server is provisioned once so a bad server fails
// the load; the returned specs stay unresolved.
func readServers(p *problems, n *yaml.Node, env LookupEnv) []bus.ServerSpec {
	if isNull(n) {
		return nil
	}
	type entry struct {
		name string
		line int
		node *yaml.Node
	}
	var entries []entry
	switch dn := deref(n); dn.Kind {
	case yaml.MappingNode:
		for _, kv := range pairs(dn) {
			entries = append(entries, entry{kv.key, deref(kv.val).Line, kv.val})
		}
	case yaml.SequenceNode:
		for i, item := range dn.Content {
			at := "mcp_servers[" + strconv.Itoa(i) + "]"
			if !isMapping(item) {
				p.errorf(at, "must be a mapping with server_name, url, ...")
				continue
			}
			name, ok := listName(p, at, item)
			if !ok {
				continue
			}
			entries = append(entries, entry{name, deref(item).Line, item})
		}
	default:
		p.errorf("mcp_servers", "must be a mapping of servers by name or a list of servers")
		return nil
	}

	firstLine := map[string]int{}
	prefixOwner := map[string]string{}
	var specs []bus.ServerSpec
	for _, e := range entries {
		path := serverPath(e.name)
		if line, dup := firstLine[e.name]; dup {
			p.errorf(path, fmt.Sprintf("duplicate server name (first defined on line %d)", line))
			continue
		}
		firstLine[e.name] = e.line
		spec, ok := readServer(p, path, e.name, e.node, env)
		if !ok {
			continue
		}
		up, err := Provision(spec, env)
		if err != nil {
			p.add(err.(Errors)...)
			continue
		}
		if owner, clash := prefixOwner[up.Prefix()]; clash {
			p.errorf(path, "tool prefix (alias, else name) is already used by server "+owner)
		} else {
			prefixOwner[up.Prefix()] = e.name
		}
		specs = append(specs, spec)
	}
	return specs
}

// listName reads the name of a server in the list shape.
func listName(p *problems, at string, item *yaml.Node) (string, bool) {
	var byServerName, byName string
	var hasServerName, hasName bool
	for _, kv := range pairs(item) {
		switch kv.key {
		case "server_name":
			byServerName, hasServerName = p.str(at+".server_name", kv.val)
		case "name":
			byName, hasName = p.str(at+".name", kv.val)
		}
	}
	switch {
	case hasServerName && hasName && byServerName != byName:
		p.errorf(at, "server_name and name disagree; give one")
		return "", false
	case hasServerName:
		return byServerName, true
	case hasName:
		return byName, true
	}
	p.errorf(at, "server_name is required")
	return "", false
}

// readServer reads one server's fields as written (bus.ServerFields says
// how each is written). ok is false when the server already has errors, so
// provisioning it would only repeat them.
func readServer(p *problems, path, name string, n *yaml.Node, env LookupEnv) (spec bus.ServerSpec, ok bool) {
	before := len(p.errs)
	if !isMapping(n) {
		p.errorf(path, "must be a mapping with url, transport, ...")
		return spec, false
	}
	spec = bus.ServerSpec{Name: name, Source: "config"}
	var unknown, stdioKeys []string
	given := map[string]string{} // field name -> the key that gave it
	for _, kv := range pairs(n) {
		at := path + "." + kv.key
		f, known := bus.LookupServerField(kv.key)
		switch {
		case kv.key == "server_name" || kv.key == "name":
			if s, _ := p.str(at, kv.val); s != name {
				p.warn(at, "ignored: the server is named by its key in mcp_servers")
			}
			continue
		case !known:
			unknown = append(unknown, kv.key)
			continue
		}
		if first, twice := given[f.Name]; twice && first != kv.key {
			p.errorf(at, "give the "+fieldNoun(f)+" once: "+oneOf(f))
			continue
		}
		given[f.Name] = kv.key
		readField(p, at, f, kv.key, kv.val, &spec, env)
		if f.Stdio {
			stdioKeys = append(stdioKeys, kv.key)
		}
	}
	reportUnknown(p, path, "", unknown, serverKeys, litellmServer) // keys.go
	spec.Transport = NormalTransport(spec.Transport)
	if spec.AuthValue != "" && (spec.AuthType == "" || spec.AuthType == "none") {
		p.warn(path+".auth_value", "ignored because auth_type is none")
	}
	switch {
	case spec.Transport == "" && spec.Command != "":
		spec.Transport = "stdio" // LiteLLM infers stdio from a command
	case spec.Transport != "stdio" && len(stdioKeys) > 0:
		p.warn(path, "ignoring "+strings.Join(stdioKeys, ", ")+": only used with transport stdio")
		for _, k := range stdioKeys {
			f, _ := bus.LookupServerField(k)
			f.Clear(&spec)
		}
	}
	return spec, len(p.errs) == before
}

// fieldNoun names a field that has several spellings, for "give it once".
func fieldNoun(f bus.ServerField) string {
	if f.Kind == bus.KindCost {
		return "cost"
	}
	return strings.ReplaceAll(f.Name, "_", " ")
}

// oneOf lists a field's spellings, as the operator writes them.
func oneOf(f bus.ServerField) string {
	if f.Kind == bus.KindCost {
		return "mcp_info.mcp_server_cost_info or cost_per_query"
	}
	return strings.Join(f.Names(), " or ")
}

// readField reads one field's value, written under key, into spec.
func readField(p *problems, at string, f bus.ServerField, key string, n *yaml.Node, spec *bus.ServerSpec, env LookupEnv) {
	switch {
	case f.Kind != bus.KindCost:
		f.Set(spec, yamlValue{p, at, n, env})
	case key == "mcp_info": // cost.go
		*f.Cost(spec) = readMCPInfo(p, at, n)
	default:
		*f.Cost(spec) = readCostPerQuery(p, at, n)
	}
}

// yamlValue is a server field's YAML node, read as bus.ServerField.Set asks.
type yamlValue struct {
	p   *problems
	at  string
	n   *yaml.Node
	env LookupEnv
}

func (v yamlValue) String() string         { s, _ := v.p.str(v.at, v.n); return s }
func (v yamlValue) Duration() string       { return readTimeout(v.p, v.at, v.n) }
func (v yamlValue) List() []string         { return v.p.strList(v.at, v.n) }
func (v yamlValue) Scopes() []string       { return v.p.scopes(v.at, v.n) }
func (v yamlValue) Map() map[string]string { return v.p.strMap(v.at, v.n) }
func (v yamlValue) Bool() bool             { return v.p.boolean(v.at, v.n, v.env) }
func (v yamlValue) Count() int             { return v.p.count(v.at, v.n) }
func (v yamlValue) Groups() []string       { return readAccessGroups(v.p, v.at, v.n) }

// readTimeout reads a timeout written as a number of seconds or a Go
// duration and returns it as a Go duration string. An environment reference
// is kept as written and checked by Provision.
func readTimeout(p *problems, path string, n *yaml.Node) string {
	if isNull(n) {
		return ""
	}
	if deref(n).Kind != yaml.ScalarNode {
		p.errorf(path, timeoutSyntax)
		return ""
	}
	s := deref(n).Value
	if _, ref := EnvRef(s); ref {
		return s
	}
	d, err := parseTimeout(s)
	if err != nil {
		p.errorf(path, timeoutSyntax)
		return ""
	}
	return d.String()
}

// readAccessGroups reads a server's access groups: names a key or team is
// granted in mcp_access_groups, so tokens as server names are.
func readAccessGroups(p *problems, at string, n *yaml.Node) []string {
	groups := p.strList(at, n)
	for i, g := range groups {
		if !bus.ValidToken(g) {
			p.errorf(fmt.Sprintf("%s[%d]", at, i), fmt.Sprintf("%q is not an access group name: use letters, digits, '-' and '_'", g))
		}
	}
	if groups == nil {
		groups = []string{}
	}
	return groups
}
