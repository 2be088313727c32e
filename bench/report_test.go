package main

import (
	"strings"
	"testing"
)

// The targets of issue 22 are judged against the bare proxy of the same
// rounds: a gateway within them passes, one outside misses, row by row.
func TestTargetsAgainstTheProxy(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	phase := func(target string, c int, p50, cps float64, cpu *float64) phaseResult {
		return phaseResult{Target: target, Concurrency: c, Calls: 100, P50ms: p50, CallsPerSec: cps, CPUusPerCall: cpu}
	}
	rows := func(gwP50, gwCPU, gwCPS float64) map[string]targetRow {
		r := &report{}
		r.Phases = []phaseResult{
			phase("direct", 1, 0.20, 5000, nil), phase("mcpbus", 1, 0.20+gwP50, 2000, f(gwCPU)), phase(targetProxy, 1, 0.40, 3000, f(200)),
			phase("direct", 64, 2.0, 16000, nil), phase("mcpbus", 64, 9.0, gwCPS, f(gwCPU/2)), phase(targetProxy, 64, 4.0, 8000, f(100)),
		}
		r.summarize(64)
		out := map[string]targetRow{}
		for _, row := range r.Targets {
			out[row.Metric] = row
		}
		return out
	}
	within := rows(0.25, 250, 7500) // +0.05 ms over the proxy, 1.25x its CPU, 0.94x its calls/s
	outside := rows(0.40, 300, 6000)
	for _, metric := range []string{"added p50 at c=1, minus the bare proxy's (ms)", "CPU per tools/call at c=1, mcpbus / bare proxy",
		"CPU per tools/call at c=64, mcpbus / bare proxy", "calls/s at c=64, mcpbus / bare proxy"} {
		in, ok := within[metric]
		if !ok {
			t.Fatalf("no target row %q in %v", metric, within)
		}
		if !in.Pass || outside[metric].Pass {
			t.Errorf("%s: within %+v, outside %+v", metric, in, outside[metric])
		}
	}
	if got := within["calls/s at c=64, mcpbus / bare proxy"].Value; got < 0.93 || got > 0.94 {
		t.Errorf("calls/s ratio to the proxy %.3f, want 7500/8000", got)
	}
	r := &report{Phases: []phaseResult{phase("direct", 1, 0.2, 1, nil), phase("mcpbus", 1, 0.3, 1, f(1)), phase("direct", 64, 1, 1, nil), phase("mcpbus", 64, 1, 1, f(1))}}
	r.summarize(64)
	if !strings.Contains(strings.Join(r.NotMeasured, "\n"), "-proxy=false") {
		t.Errorf("without the proxy the targets against it are not reported as not measured: %v", r.NotMeasured)
	}
}
