package ingress

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// originPolicy is the defence against DNS rebinding on the MCP endpoints: a
// web page whose host name an attacker points at the gateway's address must
// not get the victim's browser to talk MCP to it. Every MCP request (POST,
// GET and DELETE on /mcp, and the legacy /sse and /messages) is checked, and
// so are /v1/mcp/registry.json and /metrics, which need no key from an
// internal caller and (registry.json) write the Host into their answer:
//
//   - its Host must be one of ours: localhost, 127.0.0.1 or [::1] (any port)
//     when the gateway listens on a loopback address, or an entry of
//     general_settings.mcp_allowed_origins. Listening on another address
//     with no allow-list, any Host is accepted: the gateway cannot know the
//     names it is reached by, and such a gateway is reachable directly anyway.
//   - an Origin, if sent, must be allowed the same way, or, with no
//     allow-list on a non-loopback address, name the same host as Host.
//
// An entry is scheme://host[:port] or a bare host[:port]; the parts an entry
// gives are compared (case-insensitively), the parts it leaves out match
// anything. Otherwise the answer is 403 naming the refused value and the
// setting to change. The zero policy is the open one.
type originPolicy struct {
	loopback bool
	allowed  []originEntry
}

type originEntry struct{ scheme, host, port string }

func newOriginPolicy(listenAddr string, allowed []string) originPolicy {
	p := originPolicy{loopback: loopbackListen(listenAddr)}
	for _, a := range allowed {
		if e, ok := parseOriginEntry(a); ok {
			p.allowed = append(p.allowed, e)
		}
	}
	return p
}

// loopbackListen reports whether addr (host:port) is a loopback address.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// parseOriginEntry reads "scheme://host[:port]" or "host[:port]" (a
// trailing "/" is tolerated). config validates entries; here a bad one is
// skipped.
func parseOriginEntry(s string) (originEntry, bool) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	var e originEntry
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		e.scheme, s = strings.ToLower(scheme), rest
	}
	if s == "" || strings.ContainsAny(s, "/?#@ ") {
		return e, false
	}
	e.host, e.port = splitHostPort(s)
	e.host = strings.ToLower(e.host)
	return e, e.host != ""
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port" without
// allocating; the host of a bracketed IPv6 address is returned without brackets.
func splitHostPort(hp string) (host, port string) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return hp, ""
		}
		host, rest := hp[1:end], hp[end+1:]
		port, _ = strings.CutPrefix(rest, ":")
		return host, port
	}
	if i := strings.LastIndexByte(hp, ':'); i >= 0 && strings.IndexByte(hp, ':') == i {
		return hp[:i], hp[i+1:]
	}
	return hp, ""
}

func isLocalhost(host string) bool {
	return strings.EqualFold(host, "localhost") || host == "127.0.0.1" || host == "::1"
}

func (p *originPolicy) matches(scheme, host, port string) bool {
	if p.loopback && isLocalhost(host) {
		return true
	}
	for _, e := range p.allowed {
		if strings.EqualFold(e.host, host) && (e.port == "" || e.port == port) && (e.scheme == "" || scheme == "" || strings.EqualFold(e.scheme, scheme)) {
			return true
		}
	}
	return false
}

// open: any Host, and an Origin only of that same host.
func (p *originPolicy) open() bool { return !p.loopback && len(p.allowed) == 0 }

// check returns the 403 for an MCP request from a Host or Origin that is not
// ours.
func (p *originPolicy) check(r *http.Request) *bus.Error {
	return p.checkOn(r, "the MCP endpoint")
}

// checkOn is check for any endpoint, which the refusal names as where.
func (p *originPolicy) checkOn(r *http.Request, where string) *bus.Error {
	host, port := splitHostPort(r.Host)
	if !p.open() && !p.matches("", host, port) {
		return bus.Errorf(bus.ErrForbidden, "Host %q is not allowed on %s (DNS rebinding protection): %s",
			clip(r.Host), where, p.advice())
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	scheme, rest, ok := strings.Cut(origin, "://")
	oHost, oPort := splitHostPort(rest)
	if ok && oHost != "" && !strings.ContainsAny(rest, "/?#@") {
		if p.matches(scheme, oHost, oPort) || p.open() && strings.EqualFold(oHost, host) {
			return nil
		}
	}
	return bus.Errorf(bus.ErrForbidden, "Origin %q is not allowed on %s (DNS rebinding protection): %s",
		clip(origin), where, p.advice())
}

func (p *originPolicy) advice() string {
	switch {
	case p.open():
		return "the Origin must name the host the request was sent to, or be listed in general_settings.mcp_allowed_origins"
	case p.loopback:
		return "the gateway listens on loopback and accepts localhost, 127.0.0.1 and [::1]; add other names to general_settings.mcp_allowed_origins"
	}
	return "add it to general_settings.mcp_allowed_origins"
}

// clip bounds a client-sent value quoted in an error.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
