package bus

import (
	"encoding/json"
	"fmt"
	"strings"
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
		// The shape (attack 11): each of these used to be a silent 202.
		{`{"jsonrpc":"2.0","id":1}`, ErrInvalidRequest, "id, no method, no result, no error"},
		{`{"jsonrpc":"2.0","id":"x"}`, ErrInvalidRequest, "string id alone"},
		{`{"jsonrpc":"2.0","id":1,"method":""}`, ErrInvalidRequest, "empty method (request)"},
		{`{"jsonrpc":"2.0","method":""}`, ErrInvalidRequest, "empty method (notification)"},
		{`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, ErrInvalidRequest, "result and error"},
		{`{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, ErrInvalidRequest, "method and result"},
		{`{"jsonrpc":"2.0","method":"x","error":{"code":1,"message":"x"}}`, ErrInvalidRequest, "method and error"},
		{`{"jsonrpc":"2.0","id":1,"error":"nope"}`, ErrInvalidRequest, "error not an object"},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":"1","message":"x"}}`, ErrInvalidRequest, "error code not a number"},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}`, ErrInvalidRequest, "error code not an integer"},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":1}}`, ErrInvalidRequest, "error without message"},
		{`{"jsonrpc":"2.0","id":1,"result":{},"params":{}}`, ErrInvalidRequest, "response with params"},
		{`{"jsonrpc":"2.0","id":1,"method":5}`, ErrInvalidRequest, "method not a string"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":"y"}`, ErrInvalidRequest, "params a string"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}`, ErrInvalidRequest, "params an array"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":null}`, Kind{}, "params null"},
		{`{"jsonrpc":"2.0","id":null,"method":"x"}`, ErrInvalidRequest, "null id"},
		{`{"jsonrpc":"2.0","id":true,"method":"x"}`, ErrInvalidRequest, "boolean id"},
		{`{"jsonrpc":"2.0","id":"` + strings.Repeat("i", MaxIDLen) + `","method":"x"}`, ErrInvalidRequest, "id over the bound"},
		{`{"jsonrpc":"2.0","id":"` + strings.Repeat("i", MaxIDLen-2) + `","method":"x"}`, Kind{}, "id at the bound"},
		{`{"jsonrpc":2.0,"id":1,"method":"x"}`, ErrInvalidRequest, "jsonrpc a number"},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"m","data":{"x":1}}}`, Kind{}, "error response"},
		{`"just a string"`, ErrInvalidRequest, "not an object"},
		{`{"jsonrpc":"2.0","id":1,"method":"x"} {}`, ErrParse, "two values"},
		{strings.Repeat("[", 20000) + strings.Repeat("]", 20000), ErrInvalidRequest, "deep nesting as a batch"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`, ErrParse, "nesting deeper than encoding/json's limit"},
		// Member names are exact, and keys are not repeated where the
		// gateway reads (attack 3: the gateway and the upstream must read
		// the same name).
		{`{"jsonrpc":"2.0","ID":1,"method":"x"}`, ErrInvalidRequest, "ID upper case"},
		{`{"jsonrpc":"2.0","id":1,"Method":"x"}`, ErrInvalidRequest, "Method"},
		{`{"JSONRPC":"2.0","id":1,"method":"x"}`, ErrInvalidRequest, "JSONRPC"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","method":"y"}`, ErrInvalidRequest, "method twice"},
		{`{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}`, ErrInvalidRequest, "id twice"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","NAME":"echo"}}`, ErrInvalidRequest, "params name and NAME"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","name":"echo"}}`, ErrInvalidRequest, "params name twice"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","Name":"echo"}}`, ErrInvalidRequest, "params Name"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","n\u0041me":"echo"}}`, ErrInvalidRequest, "params nAme escaped"},
		{`{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a","URI":"b"}}`, ErrInvalidRequest, "params uri and URI"},
		{`{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":1,"progresstoken":2}}}`, ErrInvalidRequest, "params._meta keys"},
		{`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a","NAME":"b"}}}`, ErrInvalidRequest, "params.ref keys"},
		{`{"jsonrpc":"2.0","id":"x","result":{"roots":[],"Roots":[]}}`, ErrInvalidRequest, "result keys"},
		{`{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"a","Message":"b"}}`, ErrInvalidRequest, "error keys"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"k":1,"K":2}}}`, Kind{}, "arguments are the upstream's business"},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"name":"b"}}}`, Kind{}, "a name inside arguments"},
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

// Many keys in one object switch keySet to its map: still every repeat found.
func TestParseMessageManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":1,"method":"x","params":{`)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, `"k%d":1,`, i)
	}
	b.WriteString(`"name":"a","K150":2}}`)
	if _, e := ParseMessage([]byte(b.String())); e == nil || e.Kind != ErrInvalidRequest || !strings.Contains(e.Message, `"k150" and "K150"`) {
		t.Fatalf("k150 and K150 among 200 keys: %v", e)
	}
}

func TestField(t *testing.T) {
	for _, c := range []struct {
		obj, key, want string
		ok, ambiguous  bool
	}{
		{`{"name":"a"}`, "name", `"a"`, true, false},
		{` { "x" : [1,{"name":"no"}] , "name" : {"deep":"v"} } `, "name", `{"deep":"v"}`, true, false},
		{`{"NAME":"a"}`, "name", "", false, true},
		{`{"name":"a","NAME":"b"}`, "name", `"a"`, true, true},
		{`{"name":"a","name":"b"}`, "name", `"b"`, true, true},
		{`{"x":"name"}`, "name", "", false, false},
		{`["name"]`, "name", "", false, false},
		{`{"a":"\"name\":1"}`, "name", "", false, false},
		{`{`, "name", "", false, false},
		{`{"name"`, "name", "", false, false},
		{`{"name":`, "name", "", false, false},
		{`{"a":1 "name":2}`, "name", "", false, false},
	} {
		v, ok, amb := Field([]byte(c.obj), c.key)
		if string(v) != c.want || ok != c.ok || amb != c.ambiguous {
			t.Errorf("Field(%s, %q) = %s, %v, %v; want %s, %v, %v", c.obj, c.key, v, ok, amb, c.want, c.ok, c.ambiguous)
		}
	}
}
