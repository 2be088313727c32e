package upstream

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus/version"
)

func TestDiscoverInfo(t *testing.T) {
	for _, c := range []struct {
		name, result string
		modern, dual bool
		want         []string // substrings of the info
		not          []string
	}{
		{"stateless era only", `{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true},"resources":{"subscribe":true,"listChanged":true},"logging":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"s","version":"3"}}}`,
			true, false, []string{`"protocolVersion":"2026-07-28"`, `"tools":{"listChanged":true}`, `"resources":{"subscribe":true,"listChanged":true}`, `"logging":{}`, `"serverInfo":{"name":"s","version":"3"}`}, nil},
		{"both eras", `{"supportedVersions":["2026-07-28","2025-11-25"],"capabilities":{},"instructions":"hi"}`,
			true, true, []string{`"instructions":"hi"`, `"serverInfo":{"name":"gh","version":""}`}, nil},
		{"session era only", `{"supportedVersions":["2025-11-25","2025-06-18"],"capabilities":{}}`, false, false, nil, nil},
		{"an unknown later era only", `{"supportedVersions":["2099-01-01"],"capabilities":{}}`, false, false, nil, nil},
		{"not a discover result", `{"content":[]}`, false, false, nil, nil},
		{"not an object", `[1]`, false, false, nil, nil},
	} {
		info, modern, dual := discoverInfo(json.RawMessage(c.result), "gh")
		if modern != c.modern || dual != c.dual {
			t.Errorf("%s: modern %v dual %v, want %v %v", c.name, modern, dual, c.modern, c.dual)
		}
		for _, w := range c.want {
			if !strings.Contains(string(info), w) {
				t.Errorf("%s: info %s lacks %s", c.name, info, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(string(info), n) {
				t.Errorf("%s: info %s still has %s", c.name, info, n)
			}
		}
	}
}

func TestModernParams(t *testing.T) {
	c := newStreamableClient("gh", "http://127.0.0.1:1/mcp", nil, "", nil)
	defer c.Close()
	ctx := WithCaller(context.Background(), Caller{Modern: true, Caps: json.RawMessage(`{"sampling":{}}`)})
	for _, tc := range []struct{ in, want string }{
		{``, `{"_meta":{"io.modelcontextprotocol/clientCapabilities":{"sampling":{}},"io.modelcontextprotocol/clientInfo":{"name":"mcpbus","version":"` + version.Version + `"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`},
		// A progress token stays; a stale log level from the caller's own
		// _meta goes (the caller said none).
		{`{"name":"x","_meta":{"progressToken":7,"io.modelcontextprotocol/logLevel":"debug"}}`, `"progressToken":7`},
		// Not an object: sent as it is, for the upstream to refuse.
		{`[1,2]`, `[1,2]`},
		{`{"_meta":"x"}`, `{"_meta":"x"}`},
	} {
		got := string(c.modernParams(ctx, json.RawMessage(tc.in)))
		if !strings.Contains(got, tc.want) {
			t.Errorf("modernParams(%s) = %s, want it to hold %s", tc.in, got, tc.want)
		}
		if strings.Contains(got, "logLevel") {
			t.Errorf("modernParams(%s) = %s: a log level the caller did not ask for", tc.in, got)
		}
	}
	// No caller at all: capabilities {}.
	if got := string(c.modernParams(context.Background(), nil)); !strings.Contains(got, `"io.modelcontextprotocol/clientCapabilities":{}`) {
		t.Errorf("no caller: %s", got)
	}
}
