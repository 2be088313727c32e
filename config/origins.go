package config

import (
	"net/netip"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// readOrigins reads general_settings.mcp_allowed_origins: the Origin and Host
// values the MCP endpoints accept besides localhost ones (against DNS
// rebinding). A list, or one comma-separated string (or an environment
// reference holding one). Each entry is scheme://host[:port] or a bare
// host[:port]; entries are returned with scheme and host in lower case and
// without a trailing "/". Values are never quoted in errors: one may come
// from the environment.
func readOrigins(p *problems, path string, n *yaml.Node, env LookupEnv) []string {
	items := readStringList(p, path, n, env)
	var out []string
	for _, it := range items {
		if it.s == "" {
			continue
		}
		o, ok := normalizeOrigin(it.s)
		if !ok {
			p.errorf(it.path, "must be scheme://host[:port] (such as https://app.example.com) or a bare host[:port] (app.example.com), with no path, query or user")
			continue
		}
		out = append(out, o)
	}
	return out
}

// normalizeOrigin checks one entry and returns it in canonical form.
func normalizeOrigin(s string) (string, bool) {
	s = strings.TrimSuffix(s, "/")
	scheme, rest, hasScheme := strings.Cut(s, "://")
	if !hasScheme {
		scheme, rest = "", s
	} else if !validScheme(scheme) {
		return "", false
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return "", false
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", false
		}
		if a, err := netip.ParseAddr(rest[1:end]); err != nil || !a.Is6() {
			return "", false
		}
		host = rest[:end+1]
		if tail := rest[end+1:]; tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return "", false
			}
			port = p
		}
	} else if h, p, ok := strings.Cut(rest, ":"); ok {
		host, port = h, p
	}
	if host == "" || !validHost(host) {
		return "", false
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", false
		}
	}
	out := strings.ToLower(host)
	if port != "" {
		out += ":" + port
	}
	if hasScheme {
		out = strings.ToLower(scheme) + "://" + out
	}
	return out, true
}

func validScheme(s string) bool {
	if s == "" || !isLetter(rune(s[0])) {
		return false
	}
	for _, r := range s {
		if !isLetter(r) && !(r >= '0' && r <= '9') && r != '+' && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

// validHost accepts a bracketed IPv6 address, or letters, digits, '-', '_'
// and '.' (DNS names and IPv4 addresses).
func validHost(h string) bool {
	if strings.HasPrefix(h, "[") {
		return true // checked by the caller
	}
	for _, r := range h {
		if !isLetter(r) && !(r >= '0' && r <= '9') && r != '-' && r != '.' && r != '_' {
			return false
		}
	}
	return true
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
