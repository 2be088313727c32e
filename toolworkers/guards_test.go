package toolworkers

import (
	"regexp"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// A server no guard applies to has no chain: its calls skip guards with a
// nil check.
func TestGuardChainOffIsNil(t *testing.T) {
	gs := []config.Guard{{Name: "only-b", Kind: config.GuardSizeLimit, Request: true, MaxBytes: 10}}
	if c := newGuardChain(gs, nil); c != nil {
		t.Errorf("a guard named by no server applies: %+v", c)
	}
	if c := newGuardChain(gs, []string{"only-b"}); c == nil || len(c.request) != 1 || len(c.result) != 0 {
		t.Errorf("a named guard: %+v", c)
	}
	if err := checkGuardNames(gs, []string{"missing"}); err == nil {
		t.Error("a server naming an unknown guard starts")
	}
}

// A mask changes only the strings that match: the rest of the JSON (other
// strings, numbers as written, keys, markup) is kept; patterns look at
// values, not keys, at any depth.
func TestBuiltinGuardsKeepWhatTheyDoNotTouch(t *testing.T) {
	mask := config.Guard{Name: "m", Kind: config.GuardMask, Patterns: []config.GuardPattern{
		{Name: "aws_access_key", RE: regexp.MustCompile(config.GuardPresets["aws_access_key"])},
		{Name: "patterns[0]", RE: regexp.MustCompile(`secret-\d+`)}}}
	in := `{"content":[{"type":"text","text":"<b>AKIAIOSFODNN7EXAMPLE</b> & secret-42"}],"structuredContent":{"n":1.10,"AKIAIOSFODNN7EXAMPLE":true}}`
	v := builtinGuard(mask, bus.GuardPhaseResult, []byte(in))
	want := `{"content":[{"text":"<b>[MASKED:aws_access_key]</b> & [MASKED]","type":"text"}],"structuredContent":{"AKIAIOSFODNN7EXAMPLE":true,"n":1.10}}`
	if v.decision != bus.GuardModify || string(v.payload) != want || v.reason != "masked aws_access_key×1, patterns[0]×1" {
		t.Errorf("mask: %s %s %q", v.decision, v.payload, v.reason)
	}
	if v := builtinGuard(mask, bus.GuardPhaseResult, []byte(`{"content":[{"type":"text","text":"nothing"}]}`)); v.decision != bus.GuardPass || v.payload != nil {
		t.Errorf("mask without a match: %+v", v)
	}
	block := config.Guard{Name: "b", Kind: config.GuardBlockPatterns, Patterns: []config.GuardPattern{{Name: "patterns[0]", RE: regexp.MustCompile(`^drop`)}}}
	if v := builtinGuard(block, bus.GuardPhaseRequest, []byte(`{"drop":"x"}`)); v.decision != bus.GuardPass {
		t.Errorf("a pattern matched a key: %+v", v)
	}
	if v := builtinGuard(block, bus.GuardPhaseRequest, []byte(`{"q":{"list":["ok","drop it"]}}`)); v.decision != bus.GuardBlock || v.err.Kind != bus.ErrGuardBlocked {
		t.Errorf("a nested match: %+v", v)
	}
	if v := builtinGuard(block, bus.GuardPhaseRequest, nil); v.decision != bus.GuardPass {
		t.Errorf("no arguments: %+v", v)
	}
}
