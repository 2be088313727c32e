package ingress

import (
	"net/http"
	"net/netip"
	"strings"
)

// xffPolicy decides which address classifies a caller.
//
// X-Forwarded-For is read only when it is enabled and the direct peer is one of
// the trusted proxies; then the client is the entry hops places from the right
// of the combined list (every X-Forwarded-For line in order, comma-split). The
// entries right of it were appended by trusted proxies; those left of it are
// whatever the client sent and are never read, so a client cannot choose its
// class (LiteLLM's leftmost-entry rule can be spoofed). Anything unclear fails
// closed: no valid address, and the caller is external.
type xffPolicy struct {
	enabled bool
	trusted []netip.Prefix
	hops    int
}

// clientAddr returns the address to classify r by, or false if there is none
// to trust.
func (p xffPolicy) clientAddr(r *http.Request) (netip.Addr, bool) {
	peer, ok := parsePeer(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if !p.enabled || !inAny(p.trusted, peer) {
		return peer, true
	}
	hops := max(p.hops, 1)
	var entries []string
	for _, line := range r.Header.Values("X-Forwarded-For") {
		for _, e := range strings.Split(line, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	if len(entries) < hops {
		return netip.Addr{}, false
	}
	// The rightmost hops entries were written by trusted proxies: all of them
	// must be addresses, or the chain is not what the configuration says.
	var addr netip.Addr
	for i := len(entries) - 1; i >= len(entries)-hops; i-- {
		a, ok := parseXFFEntry(entries[i])
		if !ok {
			return netip.Addr{}, false
		}
		addr = a
	}
	return addr, true
}

// parsePeer reads http.Request.RemoteAddr ("ip:port").
func parsePeer(remote string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	return normalise(ap.Addr()), true
}

// parseXFFEntry reads one X-Forwarded-For entry: "1.2.3.4", "1.2.3.4:5678",
// "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:80".
func parseXFFEntry(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return normalise(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalise(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return normalise(a), true
		}
	}
	return netip.Addr{}, false
}

// normalise unmaps ::ffff:10.1.2.3 to 10.1.2.3 and drops any zone
// (fe80::1%eth0), so configured ranges match as written.
func normalise(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func inAny(ranges []netip.Prefix, a netip.Addr) bool {
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
