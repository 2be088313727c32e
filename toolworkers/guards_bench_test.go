package toolworkers

import (
	"regexp"
	"testing"

	"github.com/mcpbus/mcpbus/config"
)

// The cost of guards on a plain tools/call (benchWorker's): off (no guard
// applies to the server: a nil check), and one built-in guard on, a
// request-phase pattern check with the aws_access_key preset that passes
// (the arguments are decoded and their strings matched).
func BenchmarkWorkerToolsCallGuardsOff(b *testing.B) { benchWorker(b, false, false) }

func BenchmarkWorkerToolsCallGuardOn(b *testing.B) {
	benchWorkerOpts(b, false, false, Options{Guards: []config.Guard{{
		Name: "no-keys", Kind: config.GuardBlockPatterns, Request: true, DefaultOn: true,
		Patterns: []config.GuardPattern{{Name: "aws_access_key", RE: regexp.MustCompile(config.GuardPresets["aws_access_key"])}},
	}}})
}

// BenchmarkWorkerToolsCallMaskOn: a result-phase mask with the
// aws_access_key and email presets that finds nothing (the result is
// decoded and its strings matched).
func BenchmarkWorkerToolsCallMaskOn(b *testing.B) {
	benchWorkerOpts(b, false, false, Options{Guards: []config.Guard{{
		Name: "mask", Kind: config.GuardMask, Result: true, DefaultOn: true,
		Patterns: []config.GuardPattern{
			{Name: "aws_access_key", RE: regexp.MustCompile(config.GuardPresets["aws_access_key"])},
			{Name: "email", RE: regexp.MustCompile(config.GuardPresets["email"])},
		},
	}}})
}

// The guard alone, without the call around it: what one built-in guard
// adds to a small tools/call.
func BenchmarkGuardPatternsPass(b *testing.B) {
	g := config.Guard{Name: "no-keys", Kind: config.GuardBlockPatterns, Request: true,
		Patterns: []config.GuardPattern{{Name: "aws_access_key", RE: regexp.MustCompile(config.GuardPresets["aws_access_key"])}}}
	args := []byte(`{"text":"m12345"}`)
	b.ReportAllocs()
	for b.Loop() {
		if v := builtinGuard(g, "request", args); v.err != nil {
			b.Fatal(v.err)
		}
	}
}

func BenchmarkGuardMaskResult(b *testing.B) {
	g := config.Guard{Name: "mask", Kind: config.GuardMask, Result: true,
		Patterns: []config.GuardPattern{{Name: "aws_access_key", RE: regexp.MustCompile(config.GuardPresets["aws_access_key"])}}}
	for _, c := range []struct{ name, result string }{
		{"NoMatch", `{"content":[{"type":"text","text":"m12345"}]}`},
		{"Match", `{"content":[{"type":"text","text":"key AKIAIOSFODNN7EXAMPLE"}]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			res := []byte(c.result)
			b.ReportAllocs()
			for b.Loop() {
				builtinGuard(g, "result", res)
			}
		})
	}
}
