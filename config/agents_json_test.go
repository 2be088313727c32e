package config

import (
	"strings"
	"testing"
)

// An agent written through the API is read by the file's rules: the same
// checks, os.environ/ resolved (in headers too), and an agent that would
// not be served is an error naming why, not a warning.
func TestParseAgentJSON(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"KEY": "agent-key", "TEAM": "blue"}[k]
		return v, ok
	}
	a, warnings, err := ParseAgentJSON([]byte(`{"agent_name":"helper","agent_card_params":{"name":"H","url":"http://127.0.0.1:9/","protocolVersion":"0.3"},
		"litellm_params":{"api_key":"os.environ/KEY","headers":{"X-Team":"os.environ/TEAM"},"make_public":true,"access_groups":["g1"],"model":"x"}}`), env)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "helper" || a.URL != "http://127.0.0.1:9/" || a.ProtocolVersion != "0.3" || a.APIKey != "agent-key" ||
		a.Headers["X-Team"] != "blue" || !a.Public || len(a.AccessGroups) != 1 || len(warnings) != 1 {
		t.Fatalf("agent %+v, warnings %v", a, warnings)
	}
	for body, want := range map[string]string{
		`[1]`: "agent_name",
		`{"agent_name":"a b","agent_card_params":{"url":"http://x"}}`:                                                    "agent_name: is required",
		`{"agent_name":"a","agent_card_params":{"url":"ftp://x"}}`:                                                       "agent_card_params.url",
		`{"agent_name":"a","agent_card_params":{"url":"http://x"},"litellm_params":{"api_key":"os.environ/NOPE"}}`:       "NOPE is not set",
		`{"agent_name":"a","agent_card_params":{"url":"http://x"},"litellm_params":{"headers":{"X":"os.environ/NOPE"}}}`: "NOPE is not set",
		`{"agent_name":"a","agent_card_params":{"url":"http://x"},"agent_crad_params":{}}`:                               "agent_crad_params",
		`not json`: "",
	} {
		if _, _, err := ParseAgentJSON([]byte(body), env); err == nil || !strings.Contains(err.Error(), want) || strings.HasPrefix(err.Error(), ".") {
			t.Errorf("%s: %v, want an error naming %q", body, err, want)
		}
	}
}
