package bus

import (
	"encoding/json"
	"testing"
)

func TestParseMessage(t *testing.T) {
	cases := []struct {
		in   string
		kind Kind // zero: ok
		what string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, Kind{}, "request"},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, Kind{}, "notification"},
		{`{"jsonrpc":"2.0","id":"a","result":{}}`, Kind{}, "response"},
		{``, ErrInvalidRequest, "empty"},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, ErrInvalidRequest, "batch"},
		{`{"jsonrpc":"2.0","id":1,`, ErrParse, "truncated"},
		{`{"id":1,"method":"ping"}`, ErrInvalidRequest, "no jsonrpc"},
		{`{"jsonrpc":"2.0","id":{},"method":"ping"}`, ErrInvalidRequest, "object id"},
	}
	for _, c := range cases {
		m, err := ParseMessage([]byte(c.in))
		if c.kind == (Kind{}) {
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
			}
			continue
		}
		if err == nil || err.Kind != c.kind {
			t.Errorf("%s: got %v %+v, want %s", c.what, m, err, c.kind.Code)
		}
	}
}

func TestResponsesAreVerbatim(t *testing.T) {
	result := json.RawMessage(`{"content":[],"structuredContent":{"x":1},"_meta":{"k":"v"},"future":true}`)
	got := ResultResponse(json.RawMessage(`"id-7"`), result)
	want := `{"jsonrpc":"2.0","id":"id-7","result":` + string(result) + `}`
	if string(got) != want {
		t.Fatalf("got %s", got)
	}
	var m Message
	if err := json.Unmarshal(ErrorResponse(json.RawMessage(`3`), Errorf(ErrUnknownServer, `unknown MCP server "x"`)), &m); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Code    int
		Message string
		Data    map[string]string
	}
	_ = json.Unmarshal(m.Error, &e)
	if e.Code != -32012 || e.Data["mcpbus_code"] != "MCPBUS_UNKNOWN_SERVER" || string(m.ID) != "3" {
		t.Fatalf("error response %+v id %s", e, m.ID)
	}
	if n := Notification("notifications/progress", json.RawMessage(`{"progress":1}`)); string(n) != `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}` {
		t.Fatalf("notification %s", n)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@api.example.com/mcp?token=abc&x=1": "https://api.example.com/mcp?token=[redacted]&x=[redacted]",
		"http://127.0.0.1:3001/mcp":                         "http://127.0.0.1:3001/mcp",
		"":                                                  "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
