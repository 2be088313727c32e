package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The features of issue 21 (docs/plans/durable.md), each measured as a
// gateway of its own with the feature on for the benchmark's server, in the
// same interleaved rounds as the plain gateway (whose config has every
// feature off: the "off" row is the plain mcpbus row). A feature's cost is
// its row against the plain one, round by round.

// feature is a config variant of the bench config: YAML lines added under
// general_settings, under the demo server, and at the top level.
type feature struct {
	name     string // the target is "mcpbus+" + name
	general  string
	server   string
	topLevel string
	// callVia, when set, is the tool the load generator calls instead of
	// echo, with echo's call as its arguments (tool search's call tool).
	callVia string
	// header is added to every request (a per-request opt-in).
	header map[string]string
}

// features are measured with -features (default on).
var features = []feature{
	{name: "audit", general: "  mcp_audit: {enabled: true}\n"},
	{name: "pinning", server: "    tool_pinning: withhold\n"},
	// Tool search (docs/AGGREGATION.md): the request opts in by header and
	// calls echo through call_tool, the way a client in the mode does.
	{name: "tool-search", callVia: "call_tool", header: map[string]string{"X-Mcpbus-Tool-Search": "on"}},
	// Durable tool calls on (docs/TASKS.md), for every tool; the calls do
	// not ask for a task: what having tasks on costs a plain call. A task's
	// own round trip is the Go benchmark BenchmarkTaskCreateAndResult.
	{name: "tasks", server: "    tasks: [\"*\"]\n"},
	// Two built-in guards (docs/GUARDS.md): patterns on the arguments, a
	// mask of secrets on the result; both pass the echo calls.
	{name: "guards", server: "    guardrails: [bench-patterns, bench-mask]\n", topLevel: `guardrails:
  - guardrail_name: bench-patterns
    litellm_params: {guardrail: mcpbus_block_patterns, mode: pre_mcp_call, patterns: ['rm\s+-rf', '(?i)drop\s+table']}
  - guardrail_name: bench-mask
    litellm_params: {guardrail: mcpbus_mask, mode: post_mcp_call, presets: [aws_access_key, bearer_token, email]}
`},
}

// featureConfig is the bench config with f's lines.
func featureConfig(upURL string, f feature) string {
	cfg := fmt.Sprintf(benchConfig, upURL)
	cfg = strings.Replace(cfg, "general_settings:\n", "general_settings:\n"+f.general, 1)
	return cfg + f.server + f.topLevel
}

// startFeatureGateways starts one gateway per feature, each with its
// config, and adds it as a target of the rounds.
func (b *benchRun) startFeatureGateways() error {
	if !b.o.features {
		return nil
	}
	for _, f := range features {
		name := "mcpbus+" + f.name
		cfgPath := filepath.Join(b.tmp, "config-"+f.name+".yaml")
		if err := os.WriteFile(cfgPath, []byte(featureConfig(b.upURL, f)), 0o600); err != nil {
			return err
		}
		args := []string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0", "--data", filepath.Join(b.tmp, name+"-data"), "--nats-listen", "off"}
		p, err := startProc(name, b.o.bin, args, b.env, b.tmp)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		b.started.add(p)
		u, err := p.waitListening(30 * time.Second)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		auth := b.viaAuth.Clone()
		for k, v := range f.header {
			auth.Set(k, v)
		}
		t := newTarget(name, u+"/mcp/demo", auth)
		t.callVia = f.callVia
		b.addTarget(t, gateway{p, u})
	}
	return nil
}

// featureSummary is one feature's cost at one concurrency: its row against
// direct, and against the plain gateway measured in the same rounds.
type featureSummary struct {
	Feature     string  `json:"feature"`
	Concurrency int     `json:"concurrency"`
	AddedP50ms  float64 `json:"added_p50_ms"`          // against direct
	CostP50ms   float64 `json:"p50_ms_over_plain"`     // median over rounds of its p50 - plain's
	CallsRatio  float64 `json:"calls_per_s_vs_plain"`  // median over rounds of its calls/s / plain's
	CPUusPC     float64 `json:"cpu_us_per_call"`       // the gateway process
	CPUOverPC   float64 `json:"cpu_us_per_call_extra"` // its CPU per call - plain's
	AllocsPC    float64 `json:"allocs_per_call"`
}

// summarizeFeatures fills r.Features from the phases.
func (r *report) summarizeFeatures(high int) {
	for _, f := range features {
		name := "mcpbus+" + f.name
		for _, c := range []int{1, high} {
			s := r.summaryOf(name, c)
			if s.MCPBus.Calls == 0 {
				continue
			}
			plain := r.summaryOf("mcpbus", c)
			fs := featureSummary{Feature: f.name, Concurrency: c, AddedP50ms: s.AddedP50ms, CPUusPC: s.CPUusPC,
				CPUOverPC: s.CPUusPC - plain.CPUusPC, AllocsPC: s.AllocsPC}
			var cost, ratio []float64
			fp, pp := r.phasesOf(name, c), r.phasesOf("mcpbus", c)
			for i := range min(len(fp), len(pp)) {
				cost = append(cost, fp[i].P50ms-pp[i].P50ms)
				if pp[i].CallsPerSec > 0 {
					ratio = append(ratio, fp[i].CallsPerSec/pp[i].CallsPerSec)
				}
			}
			fs.CostP50ms, fs.CallsRatio = median(cost), median(ratio)
			r.Features = append(r.Features, fs)
		}
	}
}

// phasesOf are target's phases at concurrency c, in round order.
func (r *report) phasesOf(target string, c int) []phaseResult {
	var out []phaseResult
	for _, p := range r.Phases {
		if p.Target == target && p.Concurrency == c {
			out = append(out, p)
		}
	}
	return out
}
