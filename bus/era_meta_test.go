package bus

import (
	"encoding/json"
	"strings"
	"testing"
)

func modernParams(meta string) json.RawMessage {
	return json.RawMessage(`{"name":"echo","_meta":{` + meta + `}}`)
}

const okMeta = `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{ "sampling" : {} }`

// A stateless-era request names its version and capabilities in _meta; a
// missing required field is -32602 naming it, an unknown version -32022.
func TestReadModernMeta(t *testing.T) {
	m, e := ReadModernMeta(modernParams(okMeta + `,"io.modelcontextprotocol/logLevel":"warning","io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}`))
	if e != nil || m.Version != "2026-07-28" || string(m.Capabilities) != `{"sampling":{}}` || m.LogLevel != "warning" {
		t.Fatalf("got %+v, %v", m, e)
	}
	if m, e := ReadModernMeta(modernParams(okMeta)); e != nil || m.LogLevel != "" {
		t.Errorf("no log level: got %+v, %v (none means no notifications/message)", m, e)
	}
	for _, c := range []struct {
		params json.RawMessage
		kind   Kind
		says   string
	}{
		{json.RawMessage(`{"name":"echo"}`), ErrInvalidParams, "params._meta missing"},
		{modernParams(`"io.modelcontextprotocol/clientCapabilities":{}`), ErrInvalidParams, "protocolVersion"},
		{modernParams(`"io.modelcontextprotocol/protocolVersion":"2026-07-28"`), ErrInvalidParams, "clientCapabilities"},
		{modernParams(`"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":[]`), ErrInvalidParams, "clientCapabilities"},
		{modernParams(`"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}`), ErrUnsupportedVersion, "2099-01-01"},
		{modernParams(okMeta + `,"io.modelcontextprotocol/logLevel":"loud"`), ErrInvalidParams, "logLevel"},
		{modernParams(okMeta + `,"io.modelcontextprotocol/clientInfo":"me"`), ErrInvalidParams, "clientInfo"},
	} {
		_, e := ReadModernMeta(c.params)
		if e == nil || e.Kind != c.kind || !strings.Contains(e.Message, c.says) {
			t.Errorf("%s: got %v, want %s naming %q", c.params, e, c.kind.Code, c.says)
		}
	}
}

// What goes to an older upstream loses the stateless-era keys and keeps
// everything else the client put in _meta (a progress token, trace context).
func TestStripModernMeta(t *testing.T) {
	got, err := StripModernMeta(json.RawMessage(`{"name":"echo","arguments":{"x":1},"_meta":{` + okMeta + `,"progressToken":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	_ = json.Unmarshal(got, &p)
	meta, _ := p["_meta"].(map[string]any)
	if p["name"] != "echo" || len(meta) != 1 || meta["progressToken"] != float64(7) {
		t.Errorf("got %s", got)
	}
	got, _ = StripModernMeta(modernParams(okMeta))
	if string(got) != `{"name":"echo"}` {
		t.Errorf("only modern keys: got %s, want _meta gone", got)
	}
	// The rest is copied as it came: order, spacing inside values, escapes.
	got, err = StripModernMeta(json.RawMessage(`{"z": [1, 2],"_meta":{"a\"b":2,` + okMeta + `},"arguments":{"q":"\u00e9"}}`))
	if want := `{"z":[1, 2],"_meta":{"a\"b":2},"arguments":{"q":"\u00e9"}}`; err != nil || string(got) != want {
		t.Errorf("got %s, %v; want %s", got, err, want)
	}
	if _, err := StripModernMeta(json.RawMessage(`{"name":"echo","_meta":{` + okMeta + `},`)); err == nil {
		t.Error("params that are not JSON were stripped")
	}
	plain := json.RawMessage(`{"name":"echo",  "_meta":{"progressToken":1}}`)
	if got, _ := StripModernMeta(plain); string(got) != string(plain) {
		t.Errorf("nothing to strip: got %s, want it untouched", got)
	}
}

// What a stateless-era client gets from an answer made in the older
// revisions' terms.
func TestModernAnswer(t *testing.T) {
	for _, c := range []struct {
		method, in, want string
		status           int
	}{
		{"tools/call", `{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`,
			`{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","content":[]}}`, 200},
		{"tools/list", `{"jsonrpc":"2.0","id":"a","result":{ }}`,
			`{"jsonrpc":"2.0","id":"a","result":{"resultType":"complete","ttlMs":0,"cacheScope":"private" }}`, 200},
		{"tools/list", `{"jsonrpc":"2.0","id":2,"result":{"tools":[],"resultType":"complete","ttlMs":5000,"cacheScope":"public"}}`,
			`{"jsonrpc":"2.0","id":2,"result":{"tools":[],"resultType":"complete","ttlMs":5000,"cacheScope":"public"}}`, 200},
		{"tools/call", `{"jsonrpc":"2.0","id":3,"result":{"resultType":"input_required","inputRequests":{}}}`,
			`{"jsonrpc":"2.0","id":3,"result":{"resultType":"input_required","inputRequests":{}}}`, 200},
		{"tools/call", `{"jsonrpc":"2.0","id":4,"error":{"code":-32020,"message":"down","data":{"mcpbus_code":"MCPBUS_UPSTREAM_UNAVAILABLE"}}}`,
			`{"jsonrpc":"2.0","id":4,"error":{"code":-31020,"data":{"mcpbus_code":"MCPBUS_UPSTREAM_UNAVAILABLE"},"message":"down"}}`, 200},
		{"tools/call", `{"jsonrpc":"2.0","id":5,"error":{"code":-32020,"message":"upstream's own"}}`,
			`{"jsonrpc":"2.0","id":5,"error":{"code":-32020,"message":"upstream's own"}}`, 400},
		{"resources/read", `{"jsonrpc":"2.0","id":6,"error":{"code":-32002,"message":"no such resource","data":{"uri":"x:/y"}}}`,
			`{"jsonrpc":"2.0","id":6,"error":{"code":-32602,"data":{"uri":"x:/y"},"message":"no such resource"}}`, 400},
		{"tools/call", `{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no"}}`,
			`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"no"}}`, 404},
		{"tools/call", `{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"bad","data":{"mcpbus_code":"MCPBUS_TOOL_NOT_ALLOWED"}}}`,
			`{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"bad","data":{"mcpbus_code":"MCPBUS_TOOL_NOT_ALLOWED"}}}`, 400},
	} {
		status, got := ModernAnswer([]byte(c.in), c.method)
		if string(got) != c.want || status != c.status {
			t.Errorf("%s %s:\n got %d %s\nwant %d %s", c.method, c.in, status, got, c.status, c.want)
		}
	}
}

// Whatever a router, worker or upstream answered, what reaches a
// stateless-era client is valid JSON with the same id.
func FuzzModernAnswer(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"result":{}}`, `{"jsonrpc":"2.0","id":"x","result":{"a":1}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"m"}}`, `{"jsonrpc":"2.0","id":1,"result":[]}`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":-32025,"message":"m","data":{"mcpbus_code":"MCPBUS_SERVICE_UNAVAILABLE"}}}`} {
		f.Add(s, "tools/list")
	}
	f.Fuzz(func(t *testing.T, body, method string) {
		m, e := ParseMessage([]byte(body))
		if e != nil || !m.IsResponse() {
			return
		}
		_, out := ModernAnswer([]byte(body), method)
		back, e := ParseMessage(out)
		if e != nil {
			t.Fatalf("%s became %s: %v", body, out, e)
		}
		if CanonicalID(back.ID) != CanonicalID(m.ID) {
			t.Fatalf("id changed: %s -> %s", body, out)
		}
	})
}
