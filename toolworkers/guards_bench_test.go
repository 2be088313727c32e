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
