package toolworkers

import (
	"encoding/json"
	"reflect"
	"testing"
)

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not a JSON object: %s (%v)", raw, err)
	}
	return v
}

func TestProgressTokenRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		token string // raw JSON of the caller's token
	}{
		{"string token", `"caller-token-1"`},
		{"string with escapes", `"a\"b\\c\u00e9"`},
		{"small integer", `7`},
		{"integer beyond float64 precision", `12345678901234567891`},
		{"negative number", `-3`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			params := `{"name":"search","arguments":{"q":"<b>cats</b> & dogs","n":1.50},"_meta":{"progressToken":` + c.token + `,"trace":"abc","x":{"y":[1,2]}}}`
			out, original, ok := rewriteProgressToken(json.RawMessage(params), "mcpbus-leg-1")
			if !ok {
				t.Fatalf("rewrite reported no progress token for %s", params)
			}
			if string(original) != c.token {
				t.Fatalf("original token = %s, want %s byte for byte", original, c.token)
			}

			// The upstream sees our token, and everything else unchanged.
			got := decode(t, out)
			want := decode(t, []byte(params))
			want["_meta"].(map[string]any)["progressToken"] = "mcpbus-leg-1"
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("rewritten params\n got  %s\n want %v", out, want)
			}

			// The upstream's progress notification goes back with the caller's token.
			note := `{"progressToken":"mcpbus-leg-1","progress":0.5,"total":10,"message":"half way","_meta":{"k":"v"}}`
			restored := restoreProgressToken(json.RawMessage(note), original)
			var r map[string]json.RawMessage
			if err := json.Unmarshal(restored, &r); err != nil {
				t.Fatalf("restored params not JSON: %s", restored)
			}
			if string(r["progressToken"]) != c.token {
				t.Fatalf("restored token = %s, want %s exactly", r["progressToken"], c.token)
			}
			gotNote := decode(t, restored)
			wantNote := decode(t, []byte(note))
			delete(gotNote, "progressToken")
			delete(wantNote, "progressToken")
			if !reflect.DeepEqual(gotNote, wantNote) {
				t.Fatalf("restore changed other fields: %s", restored)
			}
		})
	}
}

func TestRewriteProgressTokenLeavesOtherParamsAlone(t *testing.T) {
	cases := []struct {
		name   string
		params string
	}{
		{"no _meta", `{"name":"t","arguments":{"a":1}}`},
		{"_meta without progressToken", `{"name":"t", "_meta": {"trace":"x"}}`},
		{"progressToken only inside arguments", `{"name":"t","arguments":{"progressToken":"not-meta"}}`},
		{"progressToken as a string value", `{"name":"t","arguments":{"text":"\"progressToken\""}}`},
		{"malformed JSON", `{"_meta":{"progressToken":"x"`},
		{"params is an array", `[{"_meta":{"progressToken":"x"}}]`},
		{"_meta is not an object", `{"_meta":"progressToken"}`},
		{"empty", ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, original, ok := rewriteProgressToken(json.RawMessage(c.params), "mcpbus-leg")
			if ok || original != nil {
				t.Fatalf("ok=%v original=%s, want no progress", ok, original)
			}
			if string(out) != c.params {
				t.Fatalf("params changed:\n got  %s\n want %s", out, c.params)
			}
		})
	}
}

func TestRestoreProgressTokenMalformedUntouched(t *testing.T) {
	for _, p := range []string{`not json`, `[1,2]`, `"s"`} {
		if got := restoreProgressToken(json.RawMessage(p), json.RawMessage(`"t"`)); string(got) != p {
			t.Errorf("restore(%s) = %s, want it untouched", p, got)
		}
	}
}
