package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// DefaultInternalIPRanges are the networks treated as internal when
// general_settings.mcp_internal_ip_ranges is empty, as in LiteLLM: the private
// IPv4 ranges, loopback, and IPv6 loopback and unique-local addresses.
func DefaultInternalIPRanges() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// readGeneral reads the general_settings mcpbus uses into f. It returns the
// other keys, qualified ("general_settings.database_url"), for the single
// "keys mcpbus does not use" warning: LiteLLM keeps many proxy settings here,
// and listing them makes a misspelt mcp_* setting visible without failing.
func (f *File) readGeneral(p *problems, n *yaml.Node, env LookupEnv, parts Parts) (unused []string) {
	const base = "general_settings"
	if isNull(n) {
		return nil
	}
	if !isMapping(n) {
		p.errorf(base, "must be a mapping")
		return nil
	}
	var jwtEnabled bool
	var jwtAuth, mcpOAuth *yaml.Node
	defer func() { f.readOAuth(p, jwtEnabled, jwtAuth, mcpOAuth, env) }() // jwtauth.go
	for _, kv := range pairs(n) {
		path := base + "." + kv.key
		switch kv.key {
		case "master_key":
			if s, ok := p.str(path, kv.val); ok {
				v, ferr := resolve(path, s, env)
				if ferr != nil {
					p.add(*ferr)
				} else if v == "" {
					// An empty key would silently mean "no auth": say so instead.
					p.errorf(path, "is empty; remove it to run open on loopback, or set a key")
				}
				f.MasterKey = v
			}
		case "mcp_tool_prefix_separator":
			if s, ok := p.str(path, kv.val); ok {
				v, ferr := resolve(path, s, env)
				if ferr != nil {
					p.add(*ferr)
					break
				}
				f.ToolPrefixSeparator = v
				checkSeparator(p, path, v)
			}
		case "mcp_internal_ip_ranges":
			f.InternalIPRanges = readPrefixes(p, path, kv.val, env)
			warnLoopbackExternal(p, path, f.InternalIPRanges)
		case "mcp_trusted_proxy_ranges":
			f.TrustedProxyRanges = readPrefixes(p, path, kv.val, env)
		case "enable_mcp_registry":
			f.EnableMCPRegistry = p.boolean(path, kv.val, env)
		case "mcp_stateless_protocol":
			f.StatelessProtocol = p.boolean(path, kv.val, env)
		case "use_x_forwarded_for":
			f.UseXForwardedFor = p.boolean(path, kv.val, env)
		case "mcp_xff_num_trusted_hops":
			f.XFFNumTrustedHops = readHops(p, path, kv.val, env)
		case "mcp_allow_stdio_servers_from_api":
			f.AllowStdioFromAPI = p.boolean(path, kv.val, env)
		case "mcp_allowed_origins":
			f.AllowedOrigins = readOrigins(p, path, kv.val, env) // origins.go
		case "mcp_bus_users":
			if !parts.SkipBusUsers {
				f.BusUsers = readBusUsers(p, path, kv.val, env) // bususers.go
			}
		case "nats_replicas":
			f.NATSReplicas = readReplicas(p, path, kv.val, env)
		case "nats_creds", "nats_nkey", "nats_tls_ca", "nats_tls_cert", "nats_tls_key":
			f.NATSJoin.read(p, path, kv.key, kv.val, env) // natsjoin.go
		case "rate_limit_unavailable":
			f.RateLimitFailOpen = readFailMode(p, path, kv.val, env)
		case "external_routes":
			f.ExternalRoutes = readRouteFamilies(p, path, kv.val, env) // routes.go
		case "enable_jwt_auth":
			jwtEnabled = p.boolean(path, kv.val, env)
		case "litellm_jwtauth":
			jwtAuth = kv.val
		case "mcp_oauth":
			mcpOAuth = kv.val
		case "mcp_audit":
			f.Audit = readAudit(p, path, kv.val, env) // audit.go
		case "mcp_tool_pinning":
			f.ToolPinning = readToolPinning(p, path, kv.val, env) // pinning.go
		default:
			unused = append(unused, kv.key)
		}
	}
	return unused
}

// warnLoopbackExternal says when ranges make callers on this machine
// external: the default ranges include loopback, and a list written without
// it silently hides every internal-only server from local tools.
func warnLoopbackExternal(p *problems, path string, ranges []netip.Prefix) {
	if len(ranges) == 0 {
		return
	}
	for _, a := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		if !slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return r.Contains(a) }) {
			p.warn(path, "does not include "+a.String()+": callers on this machine (make run, CLIs, local agents) are external and see only public servers; add 127.0.0.0/8 and ::1/128 if they are internal")
			return
		}
	}
}

// readHops reads mcp_xff_num_trusted_hops: a whole number, 1 or more (a
// string, possibly an environment reference, is accepted too). On a problem it
// returns the default so later checks see a sane value.
func readHops(p *problems, path string, n *yaml.Node, env LookupEnv) int {
	if isNull(n) {
		return DefaultXFFNumTrustedHops
	}
	s, ok := p.str(path, n)
	if !ok {
		return DefaultXFFNumTrustedHops
	}
	s, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return DefaultXFFNumTrustedHops
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 1 {
		p.errorf(path, "must be a whole number, 1 or more (the number of proxies that append to X-Forwarded-For)")
		return DefaultXFFNumTrustedHops
	}
	return v
}

// checkSeparator keeps namespaced tool names within [A-Za-z0-9_.-].
func checkSeparator(p *problems, path, sep string) {
	if sep == "" {
		p.errorf(path, "must not be empty")
		return
	}
	for _, r := range sep {
		if !isNameRune(r) && r != '.' {
			p.errorf(path, "must use only the characters A-Z a-z 0-9 _ . -")
			return
		}
	}
}

// readPrefixes reads a list of CIDRs. A single string (or an environment
// reference) holding a comma-separated list is accepted too. A bare address
// means that one host; host bits after the prefix length are cleared.
func readPrefixes(p *problems, path string, n *yaml.Node, env LookupEnv) []netip.Prefix {
	items := readStringList(p, path, n, env)
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		if it.s == "" {
			continue
		}
		pfx, ok := parsePrefix(it.s)
		if !ok {
			p.errorf(it.path, "must be a CIDR such as 10.0.0.0/8 or fd00::/8")
			continue
		}
		out = append(out, pfx)
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, bool) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return pfx.Masked(), true
	}
	if addr, err := netip.ParseAddr(s); err == nil && addr.Zone() == "" {
		return netip.PrefixFrom(addr, addr.BitLen()), true
	}
	return netip.Prefix{}, false
}

// listItem is one entry of a list setting and the config path naming it.
type listItem struct{ path, s string }

// readStringList reads a list setting: a YAML list of strings, or a single
// string (or environment reference) holding a comma-separated list. Each
// entry's environment reference is resolved and its spaces trimmed.
func readStringList(p *problems, path string, n *yaml.Node, env LookupEnv) []listItem {
	if isNull(n) {
		return nil
	}
	var items []listItem
	if dn := deref(n); dn.Kind == yaml.ScalarNode {
		s, ferr := resolve(path, dn.Value, env)
		if ferr != nil {
			p.add(*ferr)
			return nil
		}
		for i, part := range strings.Split(s, ",") {
			items = append(items, listItem{path + "[" + strconv.Itoa(i) + "]", strings.TrimSpace(part)})
		}
		return items
	}
	for i, s := range p.strList(path, n) {
		ip := path + "[" + strconv.Itoa(i) + "]"
		v, ferr := resolve(ip, s, env)
		if ferr != nil {
			p.add(*ferr)
			continue
		}
		items = append(items, listItem{ip, strings.TrimSpace(v)})
	}
	return items
}

// readReplicas reads nats_replicas: 1 to bus.MaxReplicas, or "auto" (0).
func readReplicas(p *problems, path string, n *yaml.Node, env LookupEnv) int {
	if isNull(n) {
		return 0
	}
	s, ok := p.str(path, n)
	if !ok {
		return 0
	}
	s, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return 0
	}
	if s = strings.TrimSpace(s); strings.EqualFold(s, "auto") {
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > bus.MaxReplicas {
		p.errorf(path, fmt.Sprintf("must be auto or a whole number from 1 to %d (copies JetStream keeps of each bucket and stream)", bus.MaxReplicas))
		return 0
	}
	return v
}

// readFailMode reads rate_limit_unavailable: refuse (the default) or allow.
func readFailMode(p *problems, path string, n *yaml.Node, env LookupEnv) bool {
	if isNull(n) {
		return false
	}
	s, ok := p.str(path, n)
	if !ok {
		return false
	}
	s, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "refuse":
		return false
	case "allow":
		return true
	}
	p.errorf(path, "must be refuse (a rate-limited key's requests are refused while its counter is unreachable) or allow (they pass uncounted)")
	return false
}
