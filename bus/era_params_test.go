package bus

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestParamHeadersFromSchema(t *testing.T) {
	ok := []struct {
		name, schema string
		want         string // path=Header, sorted by path
	}{
		{"the spec's example", `{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"query":{"type":"string"}}}`, "region=Region"},
		{"nested properties, every type", `{"type":"object","properties":{"a":{"type":"object","properties":{"n":{"type":"integer","x-mcp-header":"N"},"b":{"type":"boolean","x-mcp-header":"B"}}}}}`, "a.b=B,a.n=N"},
		{"none", `{"type":"object","properties":{"q":{"type":"string"}}}`, ""},
	}
	for _, c := range ok {
		ps, err := ParamHeaders(json.RawMessage(c.schema))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, strings.Join(p.Path, ".")+"="+p.Header)
		}
		slices.Sort(got)
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
	bad := []struct{ name, schema, why string }{
		{"under items", `{"type":"object","properties":{"l":{"type":"array","items":{"type":"string","x-mcp-header":"L"}}}}`, "chain of properties"},
		{"under oneOf", `{"type":"object","oneOf":[{"properties":{"x":{"type":"string","x-mcp-header":"X"}}}]}`, "chain of properties"},
		{"on the root", `{"type":"string","x-mcp-header":"Root"}`, "chain of properties"},
		{"a number", `{"type":"object","properties":{"f":{"type":"number","x-mcp-header":"F"}}}`, "type \"number\""},
		{"twice", `{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"Dup"},"b":{"type":"string","x-mcp-header":"dup"}}}`, "twice"},
		{"not a token", `{"type":"object","properties":{"a":{"type":"string","x-mcp-header":"Bad Name"}}}`, "token"},
		{"empty", `{"type":"object","properties":{"a":{"type":"string","x-mcp-header":""}}}`, "token"},
	}
	for _, c := range bad {
		if _, err := ParamHeaders(json.RawMessage(c.schema)); err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.why)
		}
	}
}

func TestParamHeaderValues(t *testing.T) {
	ps := []ParamHeader{{[]string{"region"}, "Region"}, {[]string{"n"}, "N"}, {[]string{"b"}, "B"}, {[]string{"o", "g"}, "Greeting"}, {[]string{"gone"}, "Gone"}}
	h := ParamHeaderValues(ps, json.RawMessage(`{"region":"us-west1","n":-7,"b":false,"o":{"g":"Hello, 世界"},"q":"x"}`))
	for k, want := range map[string]string{"Mcp-Param-Region": "us-west1", "Mcp-Param-N": "-7", "Mcp-Param-B": "false", "Mcp-Param-Greeting": "=?base64?SGVsbG8sIOS4lueVjA==?="} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := h["Mcp-Param-Gone"]; ok {
		t.Error("a parameter absent from the arguments got a header")
	}
	if h := ParamHeaderValues(ps[1:2], json.RawMessage(`{"n":1.5}`)); len(h) != 0 {
		t.Errorf("a non-integer number became %v", h)
	}
}

func TestCheckParamHeaders(t *testing.T) {
	ps := []ParamHeader{{[]string{"region"}, "Region"}, {[]string{"n"}, "N"}}
	args := json.RawMessage(`{"region":"Hello","n":7}`)
	for _, c := range []struct {
		name string
		sent map[string]string
		why  string // "" accepted
	}{
		{"plain", map[string]string{"Region": "Hello", "N": "7"}, ""},
		{"Base64", map[string]string{"Region": "=?base64?SGVsbG8=?=", "N": "7"}, ""},
		{"names in any case, integers as numbers", map[string]string{"region": "Hello", "n": "07"}, ""},
		{"unrelated headers are not judged", map[string]string{"Region": "Hello", "N": "7", "Other": "x"}, ""},
		{"missing", map[string]string{"N": "7"}, "Mcp-Param-Region header missing"},
		{"mismatch", map[string]string{"Region": "Bye", "N": "7"}, "does not match"},
		{"bad padding", map[string]string{"Region": "=?base64?SGVsbG8?=", "N": "7"}, "does not decode"},
		{"a literal that looks almost Base64", map[string]string{"Region": "=?base64?SGVsbG8=", "N": "7"}, "does not match"},
	} {
		err := CheckParamHeaders(ps, args, c.sent)
		if c.why == "" && err != nil || c.why != "" && (err == nil || !strings.Contains(err.Error(), c.why)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
	if err := CheckParamHeaders(ps, json.RawMessage(`{"n":7}`), map[string]string{"Region": "x", "N": "7"}); err == nil || !strings.Contains(err.Error(), "do not have") {
		t.Errorf("a header for an absent parameter: %v", err)
	}
}
