package bus

import (
	"net/http"
	"strings"
	"testing"
)

func msg(t *testing.T, body string) *Message {
	t.Helper()
	m, e := ParseMessage([]byte(body))
	if e != nil {
		t.Fatal(e)
	}
	return m
}

// The era of a request: its MCP-Protocol-Version header, else its
// params._meta version (spec basic/versioning; go-sdk reads it the same way).
func TestModern(t *testing.T) {
	meta := func(v string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":` + v + `}}}`
	}
	for _, c := range []struct {
		header, body string
		want         bool
	}{
		{"2026-07-28", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, true},
		{"2025-11-25", meta(`"2026-07-28"`), false}, // the header decides
		{"", meta(`"2026-07-28"`), true},
		{"", meta(`"2027-01-01"`), true}, // later: modern, refused as unsupported elsewhere
		{"", meta(`"2025-11-25"`), false},
		{"", meta(`20260728`), false}, // not a string
		{"", `{"jsonrpc":"2.0","method":"notifications/x","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, false},
		{"", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28"}}`, false},
	} {
		h := http.Header{}
		if c.header != "" {
			h.Set(HeaderProtocolVersion, c.header)
		}
		if got := Modern(h, msg(t, c.body)); got != c.want {
			t.Errorf("header %q body %s: modern %v, want %v", c.header, c.body, got, c.want)
		}
	}
}

// Header values: visible ASCII as it is, anything else in the Base64 form,
// and back (SEP-2243's examples).
func TestHeaderValueEncoding(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"get_weather", "get_weather"},
		{"file:///tmp/a b.txt", "file:///tmp/a b.txt"},
		{"日本語", "=?base64?5pel5pys6Kqe?="},
		{" padded", "=?base64?IHBhZGRlZA==?="},
		{"tab\t", "=?base64?dGFiCQ==?="},
		{"line\nbreak", "=?base64?bGluZQpicmVhaw==?="},
		{"=?base64?abc?=", "=?base64?PT9iYXNlNjQ/YWJjPz0=?="}, // looks encoded: encoded again
		{"", ""},
	} {
		got := EncodeHeaderValue(c.in)
		if got != c.want {
			t.Errorf("encode %q = %q, want %q", c.in, got, c.want)
		}
		if back, ok := DecodeHeaderValue(got); !ok || back != c.in {
			t.Errorf("decode %q = %q %v, want %q", got, back, ok, c.in)
		}
	}
	for _, bad := range []string{"=?base64?not base64!?=", "=?base64?" + strings.Repeat("QUFB", MaxMCPHeaderValue/3) + "?="} {
		if _, ok := DecodeHeaderValue(bad); ok {
			t.Errorf("decoded %.40q", bad)
		}
	}
}

// The standard headers mirror the body; any mismatch is named, never
// quoting a value.
func TestCheckStandardHeaders(t *testing.T) {
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"天気","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`
	good := func() http.Header {
		h := http.Header{}
		h.Set(HeaderProtocolVersion, "2026-07-28")
		h.Set(HeaderMCPMethod, "tools/call")
		h.Set(HeaderMCPName, EncodeHeaderValue("天気"))
		return h
	}
	if err := CheckStandardHeaders(good(), msg(t, body)); err != nil {
		t.Fatalf("matching headers: %v", err)
	}
	for what, c := range map[string]struct {
		change func(http.Header)
		want   string
	}{
		"no version":     {func(h http.Header) { h.Del(HeaderProtocolVersion) }, "MCP-Protocol-Version header missing"},
		"other version":  {func(h http.Header) { h.Set(HeaderProtocolVersion, "2026-12-01") }, "does not match params._meta"},
		"no method":      {func(h http.Header) { h.Del(HeaderMCPMethod) }, "Mcp-Method header missing"},
		"other method":   {func(h http.Header) { h.Set(HeaderMCPMethod, "tools/list") }, "Mcp-Method header does not match"},
		"no name":        {func(h http.Header) { h.Del(HeaderMCPName) }, "Mcp-Name header missing (required for tools/call)"},
		"other name":     {func(h http.Header) { h.Set(HeaderMCPName, "secret-tool") }, "Mcp-Name header does not match params.name"},
		"undecodable":    {func(h http.Header) { h.Set(HeaderMCPName, "=?base64?%%?=") }, "Mcp-Name header is not valid"},
		"raw non-ascii?": {func(h http.Header) { h.Set(HeaderMCPName, "=?base64?5aSp5rCX?=x") }, "does not match"},
	} {
		h := good()
		c.change(h)
		err := CheckStandardHeaders(h, msg(t, body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", what, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "secret-tool") || strings.Contains(err.Error(), "天気") {
			t.Errorf("%s: the error quotes a value: %v", what, err)
		}
	}
	read := `{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///a b"}}`
	h := http.Header{}
	h.Set(HeaderProtocolVersion, "2026-07-28")
	h.Set(HeaderMCPMethod, "resources/read")
	h.Set(HeaderMCPName, "file:///a b")
	if err := CheckStandardHeaders(h, msg(t, read)); err != nil {
		t.Fatalf("resources/read names its uri: %v", err)
	}
	list := `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`
	h.Set(HeaderMCPMethod, "tools/list")
	h.Del(HeaderMCPName)
	if err := CheckStandardHeaders(h, msg(t, list)); err != nil {
		t.Fatalf("tools/list needs no Mcp-Name: %v", err)
	}
}

// Whatever a client sends, a value encodes to something HTTP carries
// unchanged (visible ASCII, no edge whitespace) and decodes back to itself.
func FuzzHeaderValue(f *testing.F) {
	for _, s := range []string{"", "x", " a", "日本", "=?base64?x?=", "a\x00b", "\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > MaxMCPHeaderValue/2 {
			return
		}
		enc := EncodeHeaderValue(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; (c < 0x20 && c != '\t') || c > 0x7e {
				t.Fatalf("encoded %q holds byte %#x", s, c)
			}
		}
		if enc != "" && (enc[0] == ' ' || enc[0] == '\t' || enc[len(enc)-1] == ' ' || enc[len(enc)-1] == '\t') {
			t.Fatalf("encoded %q has edge whitespace: %q", s, enc)
		}
		if back, ok := DecodeHeaderValue(enc); !ok || back != s {
			t.Fatalf("round trip %q -> %q -> %q %v", s, enc, back, ok)
		}
	})
}
