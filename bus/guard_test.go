package bus

import (
	"slices"
	"strings"
	"testing"
)

// A guard's reply is read strictly: a known decision, the replacement its
// phase takes with modify and nothing else, bounded; the reason comes back
// bounded and on one line.
func TestParseGuardReply(t *testing.T) {
	for _, c := range []struct {
		name, reply, phase, err string
	}{
		{"pass", `{"decision":"pass"}`, GuardPhaseRequest, ""},
		{"block", `{"decision":"block","reason":"no"}`, GuardPhaseResult, ""},
		{"modify args", `{"decision":"modify","arguments":{"a":1}}`, GuardPhaseRequest, ""},
		{"modify result", `{"decision":"modify","result":{"content":[]}}`, GuardPhaseResult, ""},
		{"unknown decision", `{"decision":"allow"}`, GuardPhaseRequest, `decision "allow" is not pass, modify or block`},
		{"no decision", `{}`, GuardPhaseRequest, `decision "" is not`},
		{"unknown field", `{"decision":"pass","verdict":"x"}`, GuardPhaseRequest, "not a guard reply"},
		{"not json", `pass`, GuardPhaseRequest, "not a guard reply"},
		{"two values", `{"decision":"pass"} {}`, GuardPhaseRequest, "more than one"},
		{"modify without", `{"decision":"modify"}`, GuardPhaseRequest, "must carry arguments as a JSON object"},
		{"modify array", `{"decision":"modify","arguments":[1]}`, GuardPhaseRequest, "must carry arguments as a JSON object"},
		{"modify wrong phase", `{"decision":"modify","arguments":{}}`, GuardPhaseResult, "may replace result only"},
		{"pass with args", `{"decision":"pass","arguments":{}}`, GuardPhaseRequest, "only modify may"},
		{"too big", `{"decision":"pass","reason":"` + strings.Repeat("x", GuardMaxReply) + `"}`, GuardPhaseRequest, "over"},
	} {
		r, err := ParseGuardReply([]byte(c.reply), c.phase)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %+v, %v; want error %q", c.name, r, err, c.err)
		}
	}
	r, err := ParseGuardReply([]byte(`{"decision":"block","reason":"line\none\u0000`+strings.Repeat("y", 2*GuardMaxReason)+`"}`), GuardPhaseRequest)
	if err != nil || strings.ContainsAny(r.Reason, "\n\x00") || len(r.Reason) > GuardMaxReason+4 || !strings.HasPrefix(r.Reason, "line one") {
		t.Errorf("reason %q, %v", r.Reason, err)
	}
}

func TestGuardNameAndCaller(t *testing.T) {
	for _, ok := range []string{"pii", "no-secrets_2"} {
		if err := CheckGuardName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "has space", strings.Repeat("g", MaxGuardNameLen+1)} {
		if CheckGuardName(bad) == nil {
			t.Errorf("%q is accepted as a guard name", bad)
		}
	}
	token := HashKey("sk-caller-key")
	c := NewGuardCaller(Identity{KeyID: token, Alias: "bot", Team: "t"}, Internal)
	if c.KeyID != token[:GuardKeyIDLen] || c.KeyAlias != "bot" || c.IPClass != Internal {
		t.Errorf("caller %+v", c)
	}
	if c := NewGuardCaller(Identity{KeyID: "master"}, External); c.KeyID != "master" {
		t.Errorf("master caller %+v", c)
	}
}

// The guards role takes guard requests and answers them, nothing else;
// workers may ask guards.
func TestGuardsRolePermissions(t *testing.T) {
	g := RolePermissions("g", []Role{RoleGuards}, nil)
	if !slices.Contains(g.Subscribe.Allow, GuardSubject("*")) || len(g.Subscribe.Allow) != 2 {
		t.Errorf("guards subscribe to %v", g.Subscribe.Allow)
	}
	for _, s := range g.Publish.Allow {
		if s != jsAPIInfo && s != jsFlowControl {
			t.Errorf("guards may publish to %s", s)
		}
	}
	if g.Response == nil || g.Response.MaxMsgs != 1 {
		t.Errorf("guards' replies: %+v", g.Response)
	}
	w := RolePermissions("w", []Role{RoleWorkers}, []string{"github"})
	if !slices.Contains(w.Publish.Allow, GuardSubject("*")) || slices.Contains(w.Subscribe.Allow, GuardSubject("*")) {
		t.Errorf("workers: publish %v", w.Publish.Allow)
	}
}
