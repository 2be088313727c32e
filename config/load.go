// Package config reads a LiteLLM-style config.yaml: the mcp_servers an mcpbus
// gateway serves and the general_settings it honours.
//
// Parse turns the file into bus.ServerSpec records kept as written (an
// "os.environ/NAME" reference stays a reference, so secrets in the environment
// never reach the KV store) and checks every server by provisioning it once.
// Provision resolves one record into the typed Upstream a worker dials.
//
// Keys mcpbus does not use never stop a load: LiteLLM configs carry model_list,
// litellm_settings, router_settings and many general_settings, and the same file
// should serve both. Unused top-level keys and unused general_settings keys
// (listed as general_settings.<key>, so a misspelt mcp_* setting is visible)
// produce one warning that lists them all; environment references inside them
// are not checked. Unused keys inside a server produce one warning per server
// (LiteLLM has fields mcpbus does not use yet, e.g. the oauth2 ones).
package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// File is a loaded config file.
type File struct {
	// MasterKey is general_settings.master_key with any environment reference
	// resolved; empty when unset.
	MasterKey string

	// Servers are the mcp_servers in file order, kept as written: environment
	// references unresolved, transport aliases normalised to "http", timeout
	// normalised to a Go duration string. Source is "config".
	Servers []bus.ServerSpec
	// Models are model_list's deployments mcpbus can serve (models.go);
	// Routing is how their groups are routed (routing.go); Agents are the
	// A2A agents (agents.go).
	Models  []Model
	Routing Routing
	Agents  []Agent

	// ToolPrefixSeparator joins a server prefix and a tool name when tools are
	// aggregated: general_settings.mcp_tool_prefix_separator, default "__";
	// the environment variable MCP_TOOL_PREFIX_SEPARATOR wins over the file.
	ToolPrefixSeparator string

	// InternalIPRanges is general_settings.mcp_internal_ip_ranges as written;
	// when empty, callers use DefaultInternalIPRanges.
	InternalIPRanges []netip.Prefix

	// AllowStdioFromAPI is general_settings.mcp_allow_stdio_servers_from_api:
	// a stdio server runs a command on the gateway's host, so by default only
	// the config file may define one; a record made any other way is refused.
	AllowStdioFromAPI bool

	// EnableMCPRegistry is general_settings.enable_mcp_registry.
	EnableMCPRegistry bool
	// StatelessProtocol is general_settings.mcp_stateless_protocol: serve
	// MCP 2026-07-28 to the clients that ask for it (ingress.Options); on
	// unless the file turns it off.
	StatelessProtocol bool

	// UseXForwardedFor is general_settings.use_x_forwarded_for.
	UseXForwardedFor bool

	// TrustedProxyRanges is general_settings.mcp_trusted_proxy_ranges: only a
	// direct peer inside them may set X-Forwarded-For (and only when
	// UseXForwardedFor is on).
	TrustedProxyRanges []netip.Prefix

	// XFFNumTrustedHops is general_settings.mcp_xff_num_trusted_hops, default 1:
	// how many trusted proxies append to X-Forwarded-For, so the client is the
	// entry this many places from the right (1 is the rightmost entry).
	XFFNumTrustedHops int

	// AllowedOrigins is general_settings.mcp_allowed_origins: the Origin (and
	// Host) values the MCP endpoints accept besides their own, against DNS
	// rebinding. Entries are scheme://host[:port] or a bare host.
	AllowedOrigins []string

	// NATSJoin is how the processes of this config join an external NATS
	// (general_settings.nats_creds, nats_nkey, nats_tls_*): file paths.
	NATSJoin NATSJoin

	// Audit is general_settings.mcp_audit (audit.go).
	Audit Audit

	// ToolPinning is general_settings.mcp_tool_pinning (pinning.go): the
	// tool_pinning of every server that does not set its own; "" is off.
	ToolPinning string

	// NATSReplicas is general_settings.nats_replicas: how many copies
	// JetStream keeps of each bucket and stream mcpbus creates; 0 (auto, the
	// default) is 3 on a NATS cluster of 3 or more servers, else 1.
	NATSReplicas int

	// RateLimitFailOpen is general_settings.rate_limit_unavailable: allow:
	// while the rpm_limit counters cannot be reached, rate-limited keys'
	// requests pass uncounted instead of being refused (refuse, the default).
	RateLimitFailOpen bool

	// ExternalRoutes is general_settings.external_routes: the route
	// families (bus.RouteFamily) external callers may reach; nil when unset
	// (bus.DefaultExternalRoutes, MCP only).
	ExternalRoutes []bus.RouteFamily

	// OAuth is how OAuth access tokens are accepted beside keys
	// (enable_jwt_auth, litellm_jwtauth, mcp_oauth; jwtauth.go).
	OAuth OAuth

	// SignedCalls is the mcp_jwt_signer guardrail (guardrails.go); nil:
	// upstream requests are not signed.
	SignedCalls *SignedCalls

	// Guards are the guardrails of mcpbus's kinds (guards.go,
	// docs/GUARDS.md), in the file's order.
	Guards []Guard

	// BusUsers is general_settings.mcp_bus_users: who, besides serve's own
	// services, may connect to the embedded NATS server, and with which roles
	// (bususers.go).
	BusUsers []bus.BusUser

	// Warnings are problems that did not stop the load, each a full line
	// starting with the file's base name.
	Warnings []string
}

// DefaultToolPrefixSeparator is the separator used when none is configured.
const DefaultToolPrefixSeparator = "__"

// DefaultXFFNumTrustedHops is mcp_xff_num_trusted_hops when unset: one proxy
// in front of the gateway.
const DefaultXFFNumTrustedHops = 1

// Load reads and parses the file at path, resolving environment references
// with os.LookupEnv.
func Load(path string) (*File, error) {
	return LoadParts(path, Parts{})
}

// Parts says which parts of a config file a process leaves unread: those
// another process uses. Their keys are still known (not reported as
// unknown), but nothing in them is read, so their os.environ/ variables
// need not be set in this process: a router holds no upstream credential
// and no other service's bus password.
type Parts struct {
	// SkipServers leaves mcp_servers to the registry and workers.
	SkipServers bool
	// SkipBusUsers leaves general_settings.mcp_bus_users to the NATS
	// server that admits them (the embedded one, or mcpbus nats-config's).
	SkipBusUsers bool
	// SkipModels leaves model_list and its routing settings to the LLM
	// service.
	SkipModels bool
	// SkipAgents leaves agents (agent_list) to the agent workers.
	SkipAgents bool
}

// LoadParts is Load reading only the parts a process uses.
func LoadParts(path string, parts Parts) (*File, error) {
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the path the operator gave; it holds no content.
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ParseParts(name, data, os.LookupEnv, parts)
}

// Parse reads the config in data. name is used as given (normally the file's
// base name) as the prefix of every error and warning. env resolves
// "os.environ/NAME" references; every reference in the parts mcpbus reads is
// checked, and a missing variable is an error. References inside keys mcpbus
// ignores (model_list, ...) are not checked.
//
// On failure the error is a *FileError listing every problem found.
func Parse(name string, data []byte, env LookupEnv) (*File, error) {
	return ParseParts(name, data, env, Parts{})
}

// ParseParts is Parse reading only the parts a process uses.
func ParseParts(name string, data []byte, env LookupEnv, parts Parts) (*File, error) {
	if env == nil {
		env = noEnv
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &FileError{Name: name, Errs: Errors{{Msg: yamlError(err)}}}
	}
	f := &File{ToolPrefixSeparator: DefaultToolPrefixSeparator, XFFNumTrustedHops: DefaultXFFNumTrustedHops, StatelessProtocol: true}
	p := &problems{}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	if !isNull(root) && !isMapping(root) {
		p.errorf("", "the file must be a YAML mapping (general_settings, mcp_servers, ...)")
	}

	checkDuplicateKeys(p, &doc, "") // keys.go
	var unused, unusedGeneral []string
	var servers, routerSettings, litellmSettings *yaml.Node
	var agents []pair
	for _, kv := range pairs(root) {
		switch kv.key {
		case "general_settings":
			unusedGeneral = f.readGeneral(p, kv.val, env, parts)
		case "mcp_servers":
			servers = kv.val
		case "router_settings":
			routerSettings = kv.val
		case "litellm_settings":
			litellmSettings = kv.val
		case "guardrails":
			f.readGuardrails(p, kv.val, env) // guardrails.go
		case "agents", "agent_list": // agent_list: LiteLLM before 1.95
			agents = append(agents, kv)
		case "model_list":
			if !parts.SkipModels {
				f.Models = readModels(p, kv.val, env) // models.go
			}
		default:
			unused = append(unused, kv.key)
		}
	}
	reportUnknown(p, "", "", unused, topLevelKeys, litellmTopLevel)
	reportUnknown(p, "general_settings", "", unusedGeneral, generalKeys, litellmGeneral)
	if sep, ok := env("MCP_TOOL_PREFIX_SEPARATOR"); ok {
		f.ToolPrefixSeparator = sep
		checkSeparator(p, "environment variable MCP_TOOL_PREFIX_SEPARATOR", sep)
	}
	if !parts.SkipServers {
		f.Servers = readServers(p, servers, env)
		f.checkPublicURL(p, env) // oauth2_flow.go
		f.checkServerGuards(p)   // guards.go
	}
	if !parts.SkipAgents {
		if len(agents) > 1 {
			p.errorf("agent_list", "agents and agent_list are the same list (agent_list is LiteLLM's name before 1.95): keep one")
		}
		for _, kv := range agents {
			f.Agents = readAgents(p, kv.key, kv.val, env) // agents.go
		}
	}
	if !parts.SkipModels {
		f.Routing.read(p, "litellm_settings", litellmSettings) // routing.go
		f.Routing.read(p, "router_settings", routerSettings)
		checkFallbacks(p, &f.Routing, f.Models)
	}

	for _, w := range p.warnings {
		f.Warnings = append(f.Warnings, name+": "+w)
	}
	if len(p.errs) > 0 {
		return nil, &FileError{Name: name, Errs: p.errs}
	}
	return f, nil
}

// yamlError keeps yaml's message (line numbers and what went wrong), which
// describes syntax rather than quoting values.
func yamlError(err error) string {
	return "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
}
