package ingress

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// FuzzClientAddr: the address and IP class of a caller (xff.go, ipClass),
// whatever the peer address, the X-Forwarded-For lines and the policy: never
// a panic; an address returned is valid, unzoned and unmapped; with
// use_x_forwarded_for off, or a peer that is not a trusted proxy (or does
// not parse), neither the address nor the class depends on the header; with
// a trusted peer, entries a client puts left of the chain change nothing;
// and internal only for an address inside the internal ranges.
func FuzzClientAddr(f *testing.F) {
	long := strings.Repeat("1", 5000)
	for _, s := range []struct {
		remote, xff1, xff2 string
		hops               int
		enabled            bool
	}{
		{"10.1.2.3:5000", "", "", 1, false},
		{"203.0.113.7:5000", "10.1.2.3", "", 1, false},
		{"10.9.0.1:5000", "203.0.113.7", "", 1, false},
		{"203.0.113.7:5000", "10.1.2.3", "", 1, true},
		{"203.0.113.7:5000", "127.0.0.1, 10.1.2.3", "", 2, true},
		{"10.9.0.1:5000", "10.1.2.3", "", 1, true},
		{"10.9.0.1:5000", "10.1.2.3, 203.0.113.7", "", 1, true},
		{"10.9.0.1:5000", "not-an-ip, 10.1.2.3", "", 1, true},
		{"10.9.0.1:5000", "  203.0.113.9 ,   10.1.2.3  ", "", 1, true},
		{"10.9.0.1:5000", "10.1.2.3", "203.0.113.7", 1, true},
		{"10.9.0.2:5000", "10.1.2.3", "10.9.0.1", 2, true},
		{"10.9.0.3:5000", "198.51.100.1, 192.168.7.7, 10.9.0.1, 10.9.0.2", "", 3, true},
		{"10.9.0.1:5000", "10.1.2.3,", "", 1, true},
		{"10.9.0.1:5000", "10.1.2.3:5678", "", 1, true},
		{"10.9.0.1:5000", "[10.1.2.3]", "", 1, true},
		{"10.9.0.1:5000", "10.1.2.3/32", "", 1, true},
		{"10.9.0.1:5000", "fd12::5%eth0", "", 1, true},
		{"10.9.0.1:5000", "::ffff:10.1.2.3", "", 1, true},
		{"10.9.0.1:5000", "[::ffff:10.1.2.3]:80", "", 1, true},
		{"[fd00:9::1]:443", "[::1]:80", "", 1, true},
		{"[fd00:9::1]:443", "[::1]", "", 1, true},
		{"[::ffff:10.9.0.1]:5000", "10.1.2.3", "", 1, true},
		{"[fd12::5%eth0]:443", "", "", 1, false},
		{"[fe80::1%" + long + "]:1", "10.1.2.3", "", 1, true},
		{"pipe", "10.1.2.3", "", 1, true},
		{"", "", "", 1, false},
		{"10.9.0.1:5000", strings.Repeat("10.1.2.3,", 2000), "", 1000, true},
		{"10.9.0.1:5000", long, "", 1, true},
		{"10.9.0.1:5000", "10.1.2.3", "", 0, true},
		{"10.9.0.1:5000", "10.1.2.3", "", -1 << 62, true},
		{"10.9.0.1:5000", "10.1.2.3", "", 1 << 62, true},
	} {
		f.Add(s.remote, s.xff1, s.xff2, s.hops, s.enabled)
	}
	var internal, proxies []netip.Prefix
	for _, p := range []string{"10.0.0.0/8", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7"} {
		internal = append(internal, netip.MustParsePrefix(p))
	}
	for _, p := range []string{"10.9.0.0/16", "fd00:9::/32"} {
		proxies = append(proxies, netip.MustParsePrefix(p))
	}
	f.Fuzz(func(t *testing.T, remote, xff1, xff2 string, hops int, enabled bool) {
		g := &Ingress{o: Options{InternalRanges: internal}, xff: xffPolicy{enabled: enabled, trusted: proxies, hops: hops}}
		request := func(lines ...string) *http.Request {
			r := &http.Request{Method: http.MethodPost, RemoteAddr: remote, Header: http.Header{}}
			for _, l := range lines {
				r.Header.Add("X-Forwarded-For", l)
			}
			return r
		}
		r := request(xff1, xff2)
		addr, ok := g.xff.clientAddr(r)
		class := g.ipClass(r)
		if ok {
			if !addr.IsValid() || addr.Zone() != "" || addr.Is4In6() {
				t.Fatalf("address %v (valid %v, zone %q)", addr, addr.IsValid(), addr.Zone())
			}
		} else if addr != (netip.Addr{}) {
			t.Fatalf("address %v with ok false", addr)
		}
		if class != bus.Internal && class != bus.External {
			t.Fatalf("class %q", class)
		}
		if (class == bus.Internal) != (ok && inAny(internal, addr)) {
			t.Fatalf("class %s for address %v (ok %v)", class, addr, ok)
		}

		peer, peerOK := parsePeer(remote)
		if !enabled || !peerOK || !inAny(proxies, peer) {
			// The header is not read: the same answer with none, or another.
			for _, lines := range [][]string{nil, {"10.1.2.3"}, {"203.0.113.7"}, {"garbage"}} {
				r2 := request(lines...)
				a2, ok2 := g.xff.clientAddr(r2)
				if a2 != addr || ok2 != ok || g.ipClass(r2) != class {
					t.Fatalf("untrusted peer %q (xff on %v): X-Forwarded-For %q gives %v %v %s, %q gives %v %v %s",
						remote, enabled, []string{xff1, xff2}, addr, ok, class, lines, a2, ok2, g.ipClass(r2))
				}
			}
			if ok != peerOK || addr != peer {
				t.Fatalf("untrusted peer %q: address %v %v, peer %v %v", remote, addr, ok, peer, peerOK)
			}
			return
		}
		if !ok {
			if class != bus.External {
				t.Fatal("no trusted address, yet not external")
			}
			return
		}
		// A trusted chain: what a client writes left of it changes nothing.
		for _, spoof := range []string{"10.1.2.3", "127.0.0.1, ::1", "garbage, ,"} {
			r2 := request(spoof, xff1, xff2)
			a2, ok2 := g.xff.clientAddr(r2)
			if a2 != addr || !ok2 || g.ipClass(r2) != class {
				t.Fatalf("a client-written %q left of the chain %q changed %v %s to %v %v %s", spoof, []string{xff1, xff2}, addr, class, a2, ok2, g.ipClass(r2))
			}
		}
	})
}
