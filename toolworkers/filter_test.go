package toolworkers

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func TestToolFilterAllows(t *testing.T) {
	tools := []string{"read", "write", "delete", "list"}
	cases := []struct {
		name                string
		allowed, disallowed []string
		active              bool
		want                []string
	}{
		{"inactive", nil, nil, false, tools},
		{"empty lists are inactive", []string{}, []string{}, false, tools},
		{"allowed only", []string{"read", "list"}, nil, true, []string{"read", "list"}},
		{"disallowed only", nil, []string{"delete"}, true, []string{"read", "write", "list"}},
		{"both: disallowed wins over allowed", []string{"read", "delete"}, []string{"delete", "write"}, true, []string{"read"}},
		{"allowed names that do not exist", []string{"nope"}, nil, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newToolFilter(c.allowed, c.disallowed)
			if f.active() != c.active {
				t.Fatalf("active() = %v, want %v", f.active(), c.active)
			}
			var got []string
			for _, tool := range tools {
				if f.allows(tool) {
					got = append(got, tool)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("allowed %v, want %v", got, c.want)
			}
		})
	}
}

func TestToolFilterList(t *testing.T) {
	readTool := `{"name":"read","description":"Read a file","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}},"annotations":{"readOnlyHint":true},"_meta":{"vendor":1}}`
	writeTool := `{"name":"write","inputSchema":{"type":"object"},"outputSchema":{"type":"object"},"futureField":[1,2,3]}`
	deleteTool := `{"name":"delete","inputSchema":{"type":"object"}}`
	result := `{"tools":[` + readTool + `,` + writeTool + `,` + deleteTool + `],"nextCursor":"page-2","_meta":{"io.example/x":true},"future":{"a":null}}`

	cases := []struct {
		name                string
		allowed, disallowed []string
		wantTools           []string // raw JSON of each kept tool
	}{
		{"allowed only", []string{"read", "delete"}, nil, []string{readTool, deleteTool}},
		{"disallowed only", nil, []string{"delete"}, []string{readTool, writeTool}},
		{"both", []string{"read", "write"}, []string{"write"}, []string{readTool}},
		{"none left", []string{"other"}, nil, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := newToolFilter(c.allowed, c.disallowed).list(json.RawMessage(result))
			var got map[string]json.RawMessage
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("filtered result is not a JSON object: %s", out)
			}
			// Every other field of the result survives.
			var orig map[string]json.RawMessage
			_ = json.Unmarshal([]byte(result), &orig)
			for k, v := range orig {
				if k == "tools" {
					continue
				}
				if string(got[k]) != string(v) {
					t.Errorf("field %q = %s, want %s", k, got[k], v)
				}
			}
			if len(got) != len(orig) {
				t.Errorf("result has fields %v, want the original's", keys(got))
			}
			// Kept tools are the upstream's JSON, in order.
			var kept []json.RawMessage
			if err := json.Unmarshal(got["tools"], &kept); err != nil || kept == nil {
				t.Fatalf("tools = %s, want an array", got["tools"])
			}
			if len(kept) != len(c.wantTools) {
				t.Fatalf("kept %d tools %s, want %d", len(kept), got["tools"], len(c.wantTools))
			}
			for i := range kept {
				if string(kept[i]) != c.wantTools[i] {
					t.Errorf("tool %d\n got  %s\n want %s", i, kept[i], c.wantTools[i])
				}
			}
		})
	}
}

func TestToolFilterListKeepsToolContent(t *testing.T) {
	// Upstream JSON with whitespace and HTML-like characters: the kept tool must
	// still carry the same content (compare decoded values).
	tool := `{ "name": "q", "description": "Use <b>bold</b> & co", "inputSchema": {"type": "object"} }`
	result := `{"tools": [` + tool + `, {"name":"drop"}]}`
	out := newToolFilter(nil, []string{"drop"}).list(json.RawMessage(result))
	var got struct{ Tools []map[string]any }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(tool), &want)
	if len(got.Tools) != 1 || !reflect.DeepEqual(got.Tools[0], want) {
		t.Fatalf("got %s", out)
	}
}

func TestToolFilterListUnreadableResultUntouched(t *testing.T) {
	f := newToolFilter([]string{"a"}, nil)
	for _, r := range []string{`not json`, `{"tools":"x"}`, `{"nextCursor":"c"}`, `[]`} {
		if got := f.list(json.RawMessage(r)); string(got) != r {
			t.Errorf("list(%s) = %s, want it untouched", r, got)
		}
	}
}

func TestToolName(t *testing.T) {
	cases := map[string]string{
		`{"name":"read","arguments":{}}`:      "read",
		`{"n\u0061me":"read"}`:                "read", // the key, unescaped, is exactly "name"
		`{"arguments":{"name":"x"}}`:          "",
		`{"NAME":"read"}`:                     "", // not the key an upstream reads
		`{"name":"read","NAME":"write"}`:      "", // two readings: refused
		`{"name":"read","name":"write"}`:      "",
		`{"name":"read","\u004eame":"write"}`: "",
		`{"name":"read","nam\u0045":"write"}`: "",     // "namE", escaped
		`{"name":"read","na\u212Ae":"write"}`: "read", // KELVIN SIGN folds to K: "naKe" is another key
		`{"name":"read","\u212Aame":"write"}`: "read",
		`{"nam\u0065":"a","name":"b"}`:        "", // the same key twice, once escaped
		`{"name":"write","nameſ":"x"}`:        "write",
		`{"name":5}`:                          "",
		`{"name":""}`:                         "",
		`garbage`:                             "",
		``:                                    "",
		`{"name":"unterminated`:               "",
	}
	for in, want := range cases {
		got, ok := toolName(json.RawMessage(in))
		if got != want && ok || ok != (want != "") {
			t.Errorf("toolName(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
