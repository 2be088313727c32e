package ingress

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestIPClassXFF(t *testing.T) {
	internal := prefixes("10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7")
	proxies := prefixes("10.9.0.0/16", "fd00:9::/32")
	const (
		in  = bus.Internal
		ext = bus.External
	)
	cases := []struct {
		name   string
		useXFF bool
		hops   int
		remote string
		xff    []string // header lines, in order
		want   bus.IPClass
	}{
		// XFF off: the direct peer classifies, whatever the header says.
		{"off, internal peer", false, 1, "10.1.2.3:5000", nil, in},
		{"off, external peer", false, 1, "203.0.113.7:5000", nil, ext},
		{"off, external peer, spoofed internal XFF ignored", false, 1, "203.0.113.7:5000", []string{"10.1.2.3"}, ext},
		{"off, trusted proxy peer with external XFF: peer classifies", false, 1, "10.9.0.1:5000", []string{"203.0.113.7"}, in},

		// XFF on, untrusted peer: the header is ignored (no spoofing).
		{"untrusted external peer spoofs internal XFF", true, 1, "203.0.113.7:5000", []string{"10.1.2.3"}, ext},
		{"untrusted external peer spoofs loopback chain", true, 2, "203.0.113.7:5000", []string{"127.0.0.1, 10.1.2.3"}, ext},
		{"untrusted internal peer with external XFF: peer classifies", true, 1, "10.1.2.3:5000", []string{"203.0.113.7"}, in},
		{"untrusted peer with garbage XFF: peer classifies", true, 1, "192.168.1.1:5000", []string{"garbage"}, in},

		// XFF on, trusted peer, one hop: the rightmost entry.
		{"trusted, hops 1, internal client", true, 1, "10.9.0.1:5000", []string{"10.1.2.3"}, in},
		{"trusted, hops 1, external client", true, 1, "10.9.0.1:5000", []string{"203.0.113.7"}, ext},
		{"trusted, hops 1, client-sent internal entry on the left ignored", true, 1, "10.9.0.1:5000", []string{"10.1.2.3, 203.0.113.7"}, ext},
		{"trusted, hops 1, client-sent garbage on the left ignored", true, 1, "10.9.0.1:5000", []string{"not-an-ip, 10.1.2.3"}, in},
		{"trusted, hops 1, spaces trimmed", true, 1, "10.9.0.1:5000", []string{"  203.0.113.9 ,   10.1.2.3  "}, in},
		{"trusted, hops 1, header lines joined in order", true, 1, "10.9.0.1:5000", []string{"10.1.2.3", "203.0.113.7"}, ext},
		{"trusted, hops 1, header lines joined in order (internal last)", true, 1, "10.9.0.1:5000", []string{"203.0.113.7", "10.1.2.3"}, in},
		{"trusted, hops 1, entry with port", true, 1, "10.9.0.1:5000", []string{"10.1.2.3:5678"}, in},

		// Two hops: client, proxy1 -> proxy2 (the peer).
		{"trusted, hops 2, internal client", true, 2, "10.9.0.2:5000", []string{"10.1.2.3, 10.9.0.1"}, in},
		{"trusted, hops 2, external client", true, 2, "10.9.0.2:5000", []string{"203.0.113.7, 10.9.0.1"}, ext},
		{"trusted, hops 2, longer chain: spoofed leftmost ignored", true, 2, "10.9.0.2:5000", []string{"127.0.0.1, 203.0.113.7, 10.9.0.1"}, ext},
		{"trusted, hops 2, across header lines", true, 2, "10.9.0.2:5000", []string{"10.1.2.3", "10.9.0.1"}, in},
		{"trusted, hops 2, garbage in the proxy-written entry", true, 2, "10.9.0.2:5000", []string{"10.1.2.3, bogus"}, ext},
		{"trusted, hops 3, internal client", true, 3, "10.9.0.3:5000", []string{"198.51.100.1, 192.168.7.7, 10.9.0.1, 10.9.0.2"}, in},

		// Fail closed.
		{"trusted, no XFF", true, 1, "10.9.0.1:5000", nil, ext},
		{"trusted, empty XFF", true, 1, "10.9.0.1:5000", []string{""}, ext},
		{"trusted, short chain for hops 2", true, 2, "10.9.0.1:5000", []string{"10.1.2.3"}, ext},
		{"trusted, short chain for hops 3", true, 3, "10.9.0.1:5000", []string{"10.1.2.3, 10.9.0.2"}, ext},
		{"trusted, garbage", true, 1, "10.9.0.1:5000", []string{"garbage"}, ext},
		{"trusted, unknown", true, 1, "10.9.0.1:5000", []string{"unknown"}, ext},
		{"trusted, trailing comma", true, 1, "10.9.0.1:5000", []string{"10.1.2.3,"}, ext},
		{"trusted, CIDR is no address", true, 1, "10.9.0.1:5000", []string{"10.1.2.3/32"}, ext},
		{"trusted, hostname", true, 1, "10.9.0.1:5000", []string{"localhost"}, ext},
		{"trusted, bad port", true, 1, "10.9.0.1:5000", []string{"10.1.2.3:port"}, ext},
		{"trusted, bracketed IPv4", true, 1, "10.9.0.1:5000", []string{"[10.1.2.3]"}, ext},
		{"trusted, obfuscated RFC 7239 style", true, 1, "10.9.0.1:5000", []string{"_hidden"}, ext},
		{"unparsable peer", true, 1, "pipe", []string{"10.1.2.3"}, ext},
		{"unparsable peer, XFF off", false, 1, "", nil, ext},

		// IPv6.
		{"IPv6 trusted peer, IPv6 ULA client", true, 1, "[fd00:9::1]:443", []string{"fd12::5"}, in},
		{"IPv6 trusted peer, bracketed client with port", true, 1, "[fd00:9::1]:443", []string{"[::1]:80"}, in},
		{"IPv6 trusted peer, bracketed client without port", true, 1, "[fd00:9::1]:443", []string{"[::1]"}, in},
		{"IPv6 trusted peer, external IPv6 client", true, 1, "[fd00:9::1]:443", []string{"2001:db8::1"}, ext},
		{"IPv6 trusted peer, IPv4 client", true, 1, "[fd00:9::1]:443", []string{"192.168.3.4"}, in},
		{"IPv6 untrusted peer spoofs", true, 1, "[2001:db8::7]:443", []string{"::1"}, ext},
		{"IPv6 client with zone", true, 1, "10.9.0.1:5000", []string{"fd12::5%eth0"}, in},
		{"IPv6 peer with zone, XFF off", false, 1, "[fd12::5%eth0]:443", nil, in},

		// IPv4-mapped IPv6 addresses are their IPv4 selves.
		{"mapped trusted peer", true, 1, "[::ffff:10.9.0.1]:5000", []string{"10.1.2.3"}, in},
		{"mapped trusted peer, external client", true, 1, "[::ffff:10.9.0.1]:5000", []string{"203.0.113.7"}, ext},
		{"mapped client entry", true, 1, "10.9.0.1:5000", []string{"::ffff:10.1.2.3"}, in},
		{"mapped client entry, bracketed with port", true, 1, "10.9.0.1:5000", []string{"[::ffff:10.1.2.3]:80"}, in},
		{"mapped external client entry", true, 1, "10.9.0.1:5000", []string{"::ffff:203.0.113.7"}, ext},
		{"mapped untrusted peer spoofs", true, 1, "[::ffff:203.0.113.7]:5000", []string{"10.1.2.3"}, ext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &Ingress{o: Options{InternalRanges: internal},
				xff: xffPolicy{enabled: c.useXFF, trusted: proxies, hops: c.hops}}
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := g.ipClass(r); got != c.want {
				t.Errorf("ipClass(peer %q, XFF %q, hops %d, on %v) = %s, want %s", c.remote, c.xff, c.hops, c.useXFF, got, c.want)
			}
		})
	}
}

// With use_x_forwarded_for on but no trusted proxies, the header is never read.
func TestIPClassXFFNoTrustedProxies(t *testing.T) {
	g := &Ingress{o: Options{InternalRanges: prefixes("10.0.0.0/8")}, xff: xffPolicy{enabled: true, hops: 1}}
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.RemoteAddr = "203.0.113.7:1"
	r.Header.Set("X-Forwarded-For", "10.1.2.3")
	if got := g.ipClass(r); got != bus.External {
		t.Fatalf("got %s", got)
	}
}

// New turns the Options into the policy, with hops defaulting to 1.
func TestNewXFFOptions(t *testing.T) {
	nc := testConn(t)
	g := New(Options{NC: nc, UseXFF: true, TrustedProxies: prefixes("10.9.0.0/16"), InternalRanges: prefixes("10.0.0.0/8")})
	defer g.Close()
	if !g.xff.enabled || g.xff.hops != 1 || len(g.xff.trusted) != 1 {
		t.Fatalf("policy %+v", g.xff)
	}
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.RemoteAddr = "10.9.0.1:1"
	r.Header.Set("X-Forwarded-For", "10.1.2.3, 203.0.113.7")
	if got := g.ipClass(r); got != bus.External {
		t.Fatalf("got %s", got)
	}
	g2 := New(Options{NC: nc, UseXFF: true, TrustedProxies: prefixes("10.9.0.0/16"), InternalRanges: prefixes("10.0.0.0/8"), XFFHops: 2})
	defer g2.Close()
	if got := g2.ipClass(r); got != bus.Internal {
		t.Fatalf("hops 2: got %s", got)
	}
}
