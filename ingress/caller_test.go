package ingress

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestCallerKey(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no headers", nil, ""},
		{"Authorization Bearer", map[string]string{"Authorization": "Bearer sk-1"}, "sk-1"},
		{"lower-case bearer", map[string]string{"Authorization": "bearer sk-1"}, "sk-1"},
		{"upper-case BEARER", map[string]string{"Authorization": "BEARER sk-1"}, "sk-1"},
		{"Bearer with extra spaces", map[string]string{"Authorization": "  Bearer   sk-1  "}, "sk-1"},
		{"Basic auth ignored", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, ""},
		{"bare token in Authorization ignored", map[string]string{"Authorization": "sk-1"}, ""},
		{"Bearer without a key", map[string]string{"Authorization": "Bearer "}, ""},
		{"empty Authorization", map[string]string{"Authorization": ""}, ""},
		{"x-litellm-api-key bare", map[string]string{"x-litellm-api-key": "sk-2"}, "sk-2"},
		{"x-litellm-api-key with Bearer", map[string]string{"x-litellm-api-key": "Bearer sk-2"}, "sk-2"},
		{"x-litellm-api-key with lower-case bearer", map[string]string{"x-litellm-api-key": "bearer sk-2"}, "sk-2"},
		{"x-litellm-api-key padded", map[string]string{"x-litellm-api-key": "  sk-2 "}, "sk-2"},
		{"x-litellm-api-key Bearer without a key", map[string]string{"x-litellm-api-key": "Bearer "}, ""},
		{"x-litellm-api-key wins over Authorization",
			map[string]string{"x-litellm-api-key": "sk-litellm", "Authorization": "Bearer oauth-token"}, "sk-litellm"},
		{"x-litellm-api-key wins over Basic",
			map[string]string{"x-litellm-api-key": "sk-litellm", "Authorization": "Basic dXNlcjpwYXNz"}, "sk-litellm"},
		{"blank x-litellm-api-key falls back to Authorization",
			map[string]string{"x-litellm-api-key": "   ", "Authorization": "Bearer sk-1"}, "sk-1"},
		// Found by FuzzCallerKey: a value with spaces or control characters
		// inside is no key (verify refuses it with the header named).
		{"a tab after Bearer", map[string]string{"x-litellm-api-key": "Bearer\tsk-2"}, "sk-2"},
		{"two words", map[string]string{"x-litellm-api-key": "sk-1 sk-2"}, ""},
		{"a control character inside", map[string]string{"Authorization": "Bearer sk-1\u0085sk-2"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			if got := callerKey(r); got != c.want {
				t.Fatalf("callerKey = %q, want %q", got, c.want)
			}
		})
	}
}

func TestMalformedKeyIsRefusedWithItsHeader(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("X-Litellm-Api-Key", "sk-1 sk-2")
	g := &Ingress{}
	_, e := g.verify(r)
	if e == nil || e.Kind != bus.ErrUnauthorized || e.Message != "unauthorized: the key in X-Litellm-Api-Key holds spaces or control characters; send the key alone" {
		t.Fatalf("verify: %v", e)
	}
}

func TestSelection(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		target  string
		headers map[string]string
		want    []string
	}{
		{"nothing", "", "/mcp", nil, nil},
		{"path only", "github", "/mcp/github", nil, []string{"github"}},
		{"path beats header, query and list", "github", "/mcp/github?server=q",
			map[string]string{"x-litellm-mcp-server": "h", "x-mcp-servers": "l1,l2"}, []string{"github"}},
		{"header beats query and list", "", "/mcp?server=q",
			map[string]string{"x-litellm-mcp-server": "h", "x-mcp-servers": "l1"}, []string{"h"}},
		{"query beats list", "", "/mcp?server=q",
			map[string]string{"x-mcp-servers": "l1,l2"}, []string{"q"}},
		{"query trimmed", "", "/mcp?server=%20q%20", nil, []string{"q"}},
		{"list last", "", "/mcp", map[string]string{"x-mcp-servers": "l1,l2"}, []string{"l1", "l2"}},
		{"header comma list trimmed", "", "/mcp",
			map[string]string{"x-litellm-mcp-server": " a , b ,c "}, []string{"a", "b", "c"}},
		{"list trimmed, empty entries dropped", "", "/mcp",
			map[string]string{"x-mcp-servers": ", a,, b ,  ,"}, []string{"a", "b"}},
		{"header of only commas falls through to query", "", "/mcp?server=q",
			map[string]string{"x-litellm-mcp-server": " , "}, []string{"q"}},
		{"blank header falls through to query", "", "/mcp?server=q",
			map[string]string{"x-litellm-mcp-server": "   "}, []string{"q"}},
		{"blank query falls through to list", "", "/mcp?server=%20",
			map[string]string{"x-mcp-servers": "l1"}, []string{"l1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, c.target, nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			if got := selection(c.path, r); !slices.Equal(got, c.want) {
				t.Fatalf("selection = %q, want %q", got, c.want)
			}
		})
	}
}

func TestIPClass(t *testing.T) {
	ranges := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("fc00::/7"),
	}
	g := &Ingress{o: Options{InternalRanges: ranges}}
	cases := []struct {
		remote string
		want   bus.IPClass
	}{
		{"10.1.2.3:5000", bus.Internal},
		{"172.16.0.1:1", bus.Internal},
		{"172.31.255.255:1", bus.Internal},
		{"172.32.0.1:1", bus.External}, // just outside 172.16/12
		{"192.168.1.10:443", bus.Internal},
		{"127.0.0.1:80", bus.Internal},
		{"8.8.8.8:53", bus.External},
		{"11.0.0.1:1", bus.External},
		{"[::1]:8080", bus.Internal},
		{"[fc00::1]:1", bus.Internal},
		{"[fd12:3456::1]:1", bus.Internal}, // fc00::/7 includes fd00::/8
		{"[fe00::1]:1", bus.External},
		{"[2001:db8::1]:1", bus.External},
		{"[::ffff:10.1.2.3]:1", bus.Internal}, // IPv4-mapped: classified by its IPv4
		{"[::ffff:8.8.8.8]:1", bus.External},
		{"[::ffff:127.0.0.1]:1", bus.Internal},
		{"[fc00::1%eth0]:1", bus.Internal}, // a zone does not stop a range from matching
		{"10.1.2.3", bus.External},         // no port: unparsable, fail closed
		{"garbage", bus.External},
		{"", bus.External},
		{"@:1", bus.External},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.RemoteAddr = c.remote
		if got := g.ipClass(r); got != c.want {
			t.Errorf("ipClass(%q) = %s, want %s", c.remote, got, c.want)
		}
	}

	// No internal ranges: everyone is external.
	none := &Ingress{}
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.RemoteAddr = "127.0.0.1:1"
	if got := none.ipClass(r); got != bus.External {
		t.Errorf("without ranges: %s, want external", got)
	}
	// Forwarded headers are not trusted.
	r.RemoteAddr = "8.8.8.8:1"
	r.Header.Set("X-Forwarded-For", "10.0.0.1")
	r.Header.Set("X-Real-Ip", "10.0.0.1")
	if got := g.ipClass(r); got != bus.External {
		t.Errorf("X-Forwarded-For trusted: %s, want external", got)
	}
}
