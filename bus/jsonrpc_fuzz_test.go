package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

// Fuzz targets for the JSON-RPC codec (jsonrpc.go, jsonscan.go). `make
// fuzz-smoke` runs each for a few seconds from the seeds below and
// testdata/fuzz/<Name>; `make fuzz` runs them longer.

// codecSeeds are messages both targets start from: valid ones of each kind
// and the attacks the codec defends against.
func codecSeeds() []string {
	long := strings.Repeat("x", 5000)
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	var many strings.Builder // more keys than keySet compares one by one
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&many, `"k%d":%d,`, i, i)
	}
	return []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + many.String() + `"name":"a"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + many.String() + `"name":"a","K15":2}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"_meta":{"progressToken":7}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"mcpbus-s2c.w1.3","reason":"x"}}`,
		`{"jsonrpc":"2.0","id":"a","result":{}}`,
		`{"jsonrpc":"2.0","id":-3e2,"result":{"content":[],"structuredContent":{"x":1}}}`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"m","data":{"x":1}}}`,
		` {"jsonrpc" : "2.0" , "id" : 1 , "method" : "x" , "params" : null } `,
		`{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a"}}}`,
		// Attacks and edges.
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","NAME":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","n\u0041me":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"later","name":"echo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":{"progressToken":1,"progresstoken":2}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"","params":{}}`,
		`{"jsonrpc":"2.0","method":""}`,
		`{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","method":"y"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"x"}`,
		`{"jsonrpc":"2.0","id":1,"meth\u006fd":"x"}`,
		`{"jſonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"x"}`,
		`{"jsonrpc":"2.0","id":"mcpbus-s2c.` + long + `.1","result":{}}`,
		`{"jsonrpc":"2.0","id":"` + long + `","method":"x"}`,
		`{"jsonrpc":"2.0","id":null,"method":"x"}`,
		`{"jsonrpc":"2.0","id":{},"method":"x"}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":` + deep + `}}`,
		`{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000) + `}}`,
		deep,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1,"method":"x"} {}`,
		`{"jsonrpc":"2.0","id":1,`,
		`{"a":"\"name\":1","name":"\ud800"}`,
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\xff\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"\xff\":1,\"\xfe\":2}",
		"",
	}
}

// FuzzParseMessage: ParseMessage never panics; what it accepts is valid JSON
// and exactly one of a request, a notification and a response, with the
// parts it returns being valid JSON cut from the input; and encoding/json
// reads the same method, id, params, result and error from it (the parser
// refuses the repeated and case-variant keys on which two readers could
// differ).
func FuzzParseMessage(f *testing.F) {
	for _, s := range codecSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = data[:len(data):len(data)] // no spare capacity to hide an overrun
		m, e := ParseMessage(data)
		if e != nil {
			if m != nil {
				t.Fatalf("both a message and an error: %+v, %v", m, e)
			}
			if e.Message == "" {
				t.Fatal("an error without a message")
			}
			if len(e.Message) > 1024 {
				t.Fatalf("error message of %d bytes: the caller's input is not bounded in it", len(e.Message))
			}
			return
		}
		if m == nil {
			t.Fatal("neither a message nor an error")
		}
		if !json.Valid(data) {
			t.Fatalf("accepted input that is not valid JSON: %q", data)
		}
		kinds := 0
		for _, k := range []bool{m.IsRequest(), m.IsNotification(), m.IsResponse()} {
			if k {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("accepted a message that is %d of request/notification/response: %q", kinds, data)
		}
		if m.JSONRPC != "2.0" {
			t.Fatalf("jsonrpc %q", m.JSONRPC)
		}
		if len(m.ID) > MaxIDLen {
			t.Fatalf("id of %d bytes accepted", len(m.ID))
		}
		if m.IsResponse() && (len(m.Result) > 0) == (len(m.Error) > 0) {
			t.Fatalf("a response with result %q and error %q", m.Result, m.Error)
		}
		for name, part := range map[string]json.RawMessage{"id": m.ID, "params": m.Params, "result": m.Result, "error": m.Error} {
			if len(part) == 0 {
				continue
			}
			if !json.Valid(part) {
				t.Fatalf("%s %q is not valid JSON", name, part)
			}
			if !subslice(data, part) {
				t.Fatalf("%s %q is not a part of the input", name, part)
			}
		}

		// encoding/json, exact keys: the same members.
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			t.Fatalf("accepted, but encoding/json cannot read it as an object: %v", err)
		}
		var version string
		if err := json.Unmarshal(obj["jsonrpc"], &version); err != nil || version != "2.0" {
			t.Fatalf(`encoding/json reads "jsonrpc" as %s`, obj["jsonrpc"])
		}
		for name, part := range map[string]json.RawMessage{"id": m.ID, "params": m.Params, "result": m.Result, "error": m.Error} {
			if !bytes.Equal(obj[name], part) {
				t.Fatalf("%s: ParseMessage read %q, encoding/json %q", name, part, obj[name])
			}
		}
		if raw, ok := obj["method"]; ok {
			var method string
			if err := json.Unmarshal(raw, &method); err != nil {
				t.Fatalf("method %s: %v", raw, err)
			}
			if method == "" || m.Method == "" {
				t.Fatal(`accepted "method":""`)
			}
			// encoding/json replaces each invalid UTF-8 byte with U+FFFD;
			// ParseMessage keeps an unescaped string's bytes. Both name the
			// same method to every reader once that is accounted for.
			if method != string([]rune(m.Method)) {
				t.Fatalf("method: ParseMessage read %q, encoding/json %q", m.Method, method)
			}
		} else if m.Method != "" {
			t.Fatalf("method %q read from a message without a \"method\" key", m.Method)
		}
		// No key that a case-insensitive reader would take for a member.
		for k := range obj {
			for _, member := range []string{"jsonrpc", "id", "method", "params", "result", "error"} {
				if k != member && strings.EqualFold(k, member) {
					t.Fatalf("accepted the key %q beside the member %q", k, member)
				}
			}
		}
		// encoding/json into a struct (case-insensitive matching) agrees too.
		var st struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("struct decode: %v", err)
		}
		if !bytes.Equal(st.ID, m.ID) || st.Method != string([]rune(m.Method)) {
			t.Fatalf("struct decode read id %q method %q; ParseMessage id %q method %q", st.ID, st.Method, m.ID, m.Method)
		}
		// The objects the gateway reads hold no key twice: Field agrees with
		// encoding/json on each of their keys.
		checkFieldsAgree(t, "params", m.Params)
		checkFieldsAgree(t, "result", m.Result)
		checkFieldsAgree(t, "error", m.Error)
		if meta, ok, _ := Field(m.Params, "_meta"); ok {
			checkFieldsAgree(t, "params._meta", meta)
		}
		if ref, ok, _ := Field(m.Params, "ref"); ok {
			checkFieldsAgree(t, "params.ref", ref)
		}
	})
}

// checkFieldsAgree checks that Field reads every key of obj (a part of an
// accepted message) as encoding/json does, unambiguously.
func checkFieldsAgree(t *testing.T, where string, obj json.RawMessage) {
	t.Helper()
	if len(obj) == 0 || obj[0] != '{' {
		return
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for k, want := range m {
		if strings.ContainsRune(k, utf8.RuneError) {
			continue // encoding/json's replacement for bytes Field keeps
		}
		got, ok, amb := Field(obj, k)
		if !ok || amb || !bytes.Equal(got, want) {
			t.Fatalf("%s: Field(%q) = %q, %v, ambiguous %v; encoding/json reads %q", where, k, got, ok, amb, want)
		}
	}
}

// subslice reports whether part lies inside data's bytes.
func subslice(data, part []byte) bool {
	if len(part) == 0 || len(data) == 0 {
		return len(part) == 0
	}
	d, p := uintptr(unsafe.Pointer(unsafe.SliceData(data))), uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	return p >= d && p+uintptr(len(part)) <= d+uintptr(len(data))
}

// FuzzField: Field and StringField never panic, whatever the bytes (valid
// JSON or not), and return parts of their input; on a valid JSON object they
// agree with encoding/json on the exact key, and flag as ambiguous exactly
// the objects that hold the key more than once or a case variant of it.
func FuzzField(f *testing.F) {
	for _, s := range codecSeeds() {
		f.Add([]byte(s), "method")
	}
	for _, c := range []struct{ obj, key string }{
		{`{"name":"later","NAME":"echo"}`, "name"},
		{`{"name":"later","name":"echo"}`, "name"},
		{`{"NAME":"echo"}`, "name"},
		{`{"ſ":1}`, "s"},
		{`{"K":1}`, "k"}, // KELVIN SIGN folds to k
		{`{"n\u0041me":"x"}`, "nAme"},
		{` { "x" : [1,{"name":"no"}] , "name" : {"deep":"v"} } `, "name"},
		{`{"a":"\"name\":1"}`, "name"},
		{`{"code":-32601,"message":"m"}`, "code"},
		{`{"name":"\ud800"}`, "name"},
		{"{\"\xff\":1,\"\xfe\":2}", "\xff"},
		{`{"name":`, "name"},
		{`{"name":1,`, "name"},
		{`{`, "name"},
		{`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `,"name":1}`, "name"},
	} {
		f.Add([]byte(c.obj), c.key)
	}
	f.Fuzz(checkField)
}

// checkField is FuzzField's check of one object and key.
func checkField(t *testing.T, obj []byte, key string) {
	obj = obj[:len(obj):len(obj)] // no spare capacity to hide an overrun
	val, ok, amb := Field(obj, key)
	s, sok, samb := StringField(obj, key)
	if !ok && len(val) > 0 {
		t.Fatalf("a value %q without ok", val)
	}
	if len(val) > 0 && !subslice(obj, val) {
		t.Fatalf("value %q is not a part of the input", val)
	}
	if samb != amb || sok && !ok {
		t.Fatalf("StringField (%v, ambiguous %v) disagrees with Field (%v, ambiguous %v)", sok, samb, ok, amb)
	}
	if !json.Valid(obj) {
		return // answers something, without failing: checked above
	}
	if ok && !json.Valid(val) {
		t.Fatalf("value %q of a valid object is not valid JSON", val)
	}
	if sok {
		var want string
		if json.Unmarshal(val, &want) != nil || s != want {
			t.Fatalf("StringField = %q; the value is %s", s, val)
		}
	} else if s != "" {
		t.Fatalf("StringField = %q with ok false", s)
	}
	members, isObject := topMembers(t, obj)
	if !isObject {
		if ok || amb {
			t.Fatalf("Field found %q (ambiguous %v) in a value that is not an object: %q", val, amb, obj)
		}
		return
	}
	if !utf8.ValidString(key) || strings.ContainsRune(key, utf8.RuneError) {
		return // encoding/json turns bad UTF-8 into U+FFFD; nothing to compare
	}
	exact, variants, replaced := 0, 0, false
	var last json.RawMessage
	for _, mb := range members {
		switch {
		case mb.key == key:
			exact++
			last = mb.val
		case strings.EqualFold(mb.key, key):
			variants++
		}
		replaced = replaced || strings.ContainsRune(mb.key, utf8.RuneError)
	}
	if replaced {
		return // a raw key with bad UTF-8 reads as U+FFFD to encoding/json only
	}
	switch {
	case exact == 1 && variants == 0:
		if !ok || amb || !bytes.Equal(val, last) {
			t.Fatalf("Field(%q) = %q, %v, ambiguous %v; encoding/json reads %q", key, val, ok, amb, last)
		}
	case exact == 0 && variants == 0:
		if ok || amb {
			t.Fatalf("Field(%q) = %q, %v, ambiguous %v for a key the object does not hold", key, val, ok, amb)
		}
	default:
		if !amb {
			t.Fatalf("Field(%q) not ambiguous in an object with %d copies and %d case variants of the key", key, exact, variants)
		}
		if exact == 0 && ok {
			t.Fatalf("Field(%q) = %q with no exact copy of the key", key, val)
		}
		if exact > 0 && (!ok || !bytes.Equal(val, last)) {
			t.Fatalf("Field(%q) = %q, %v; the last exact copy is %q", key, val, ok, last)
		}
	}
}

type member struct {
	key string
	val json.RawMessage
}

// topMembers lists the members of obj (valid JSON) in order, repeats
// included, as encoding/json's tokenizer reads them; false when obj is not
// an object.
func topMembers(t *testing.T, obj []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("decoder: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("decoder: %v", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decoder: %v", err)
		}
		out = append(out, member{tok.(string), v})
	}
	return out, true
}
