package config

import (
	"strings"
	"testing"
	"time"
)

const guardsFile = `
guardrails:
  - guardrail_name: size
    litellm_params: {guardrail: mcpbus_size_limit, mode: [pre_mcp_call, post_mcp_call], default_on: true, max_bytes: 64KiB}
  - guardrail_name: no-rm
    litellm_params: {guardrail: mcpbus_block_patterns, mode: pre_mcp_call, patterns: ['rm\s+-rf']}
  - guardrail_name: mask
    litellm_params: {guardrail: mcpbus_mask, mode: post_mcp_call, default_on: true, presets: [aws_access_key, email], patterns: ['secret-\d+']}
  - guardrail_name: policy
    litellm_params: {guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 300ms, fail: open}
  - guardrail_name: signer
    litellm_params: {guardrail: presidio, mode: pre_mcp_call}
mcp_servers:
  a: {url: "http://127.0.0.1:1/mcp", guardrails: [no-rm, policy]}
`

func TestGuardsConfig(t *testing.T) {
	f, err := Parse("c.yaml", []byte(guardsFile), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Guards) != 4 {
		t.Fatalf("guards %+v", f.Guards)
	}
	size, rm, mask, policy := f.Guards[0], f.Guards[1], f.Guards[2], f.Guards[3]
	if size.Kind != GuardSizeLimit || !size.Request || !size.Result || !size.DefaultOn || size.MaxBytes != 64<<10 {
		t.Errorf("size %+v", size)
	}
	if rm.Kind != GuardBlockPatterns || !rm.Request || rm.Result || rm.DefaultOn || len(rm.Patterns) != 1 || !rm.Patterns[0].RE.MatchString("rm  -rf /") {
		t.Errorf("no-rm %+v", rm)
	}
	if len(mask.Patterns) != 3 || mask.Patterns[0].Name != "aws_access_key" || mask.Patterns[2].Name != "patterns[0]" || !mask.Patterns[0].RE.MatchString("key AKIAIOSFODNN7EXAMPLE.") {
		t.Errorf("mask %+v", mask)
	}
	if policy.Kind != GuardNATS || policy.Timeout != 300*time.Millisecond || !policy.FailOpen || policy.Result {
		t.Errorf("policy %+v", policy)
	}
	if !rm.AppliesTo(f.Servers[0].Guardrails) || !size.AppliesTo(nil) || rm.AppliesTo(nil) {
		t.Error("AppliesTo")
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], `"signer" (presidio)`) {
		t.Errorf("warnings %q", f.Warnings)
	}
	if f, err := Parse("c.yaml", []byte(strings.Replace(guardsFile, "{guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 300ms, fail: open}", "{guardrail: mcpbus_nats, mode: pre_mcp_call}", 1)), mapEnv(nil)); err != nil ||
		f.Guards[3].Timeout != DefaultGuardTimeout || f.Guards[3].FailOpen {
		t.Errorf("external guard's defaults: %+v %v", f.Guards[3], err)
	}
}

func TestGuardsConfigErrors(t *testing.T) {
	entry := func(name, params string) string {
		return "guardrails:\n  - guardrail_name: " + name + "\n    litellm_params: " + params + "\n"
	}
	for _, c := range []struct{ src, msg string }{
		{entry("g", "{guardrail: mcpbus_block_patterns, mode: pre_mcp_call, patterns: ['(unclosed']}"),
			"guardrails[0].litellm_params.patterns[0]: is not a valid regular expression (Go RE2 syntax): missing closing )"},
		{entry("g", "{guardrail: mcpbus_block_patterns, mode: pre_mcp_call, patterns: ['x*']}"),
			"guardrails[0].litellm_params.patterns[0]: matches the empty string"},
		{entry("g", "{guardrail: mcpbus_mask, mode: post_mcp_call, presets: [emial]}"),
			`guardrails[0].litellm_params.presets[0]: is not a preset; did you mean "email"?`},
		{entry("g", "{guardrail: mcpbus_mask, mode: post_mcp_call}"),
			"guardrails[0].litellm_params: needs patterns (regular expressions) or presets"},
		{entry("g", "{guardrail: mcpbus_mask, mode: post_mcp_call, presets: [email], pattern: [x]}"),
			`guardrails[0].litellm_params.pattern: unknown key; did you mean "patterns"?`},
		{entry("g", "{guardrail: mcpbus_size_limit, mode: pre_mcp_call, max_bytes: 1k, timeout: 1s}"),
			"guardrails[0].litellm_params.max_bytes: must be a size"},
		{entry("g", "{guardrail: mcpbus_size_limit, mode: pre_mcp_call, timeout: 1s, max_bytes: 10}"),
			"guardrails[0].litellm_params.timeout: unknown key (mcpbus_size_limit takes guardrail, mode, default_on, max_bytes)"},
		{entry("g", "{guardrail: mcpbus_size_limit, mode: pre_mcp_call}"), "guardrails[0].litellm_params.max_bytes: is required"},
		{entry("g", "{guardrail: mcpbus_size_limit, max_bytes: 10}"), "guardrails[0].litellm_params.mode: is required"},
		{entry("g", "{guardrail: mcpbus_size_limit, mode: during_mcp_call, max_bytes: 10}"),
			"guardrails[0].litellm_params.mode: during_mcp_call is not run by mcpbus"},
		{entry("g", "{guardrail: mcpbus_size_limit, mode: pre_call, max_bytes: 10}"),
			`guardrails[0].litellm_params.mode: must be pre_mcp_call or post_mcp_call (or a list of both), got "pre_call"`},
		{entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call, fail: maybe}"), "guardrails[0].litellm_params.fail: must be closed"},
		{entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 2m}"), "guardrails[0].litellm_params.timeout: must be a duration above 0 and at most 1m"},
		{entry("g.x", "{guardrail: mcpbus_nats, mode: pre_mcp_call}"), "guardrails[0].guardrail_name: must be a guard name: 1 to 64 characters"},
		{entry("g", "{guardrail: mcpbus_nat, mode: pre_mcp_call}"), `guardrails[0].litellm_params.guardrail: is not a guard kind mcpbus runs; did you mean "mcpbus_nats"?`},
		{entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call}") + "    default: true\n", `guardrails[0].default: unknown key`},
		{entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call, default_on: true}") + entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call, default_on: true}")[len("guardrails:\n"):],
			`guardrails[1].guardrail_name: "g" names another guard too`},
		{entry("g", "{guardrail: mcpbus_nats, mode: pre_mcp_call, default_on: true}") + "mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp', guardrails: [h]}\n",
			`mcp_servers.a.guardrails[0]: "h" is not the guardrail_name of a guard`},
		{"mcp_servers:\n  a: {url: 'http://127.0.0.1:1/mcp', guardrails: ['a b']}\n", "mcp_servers.a.guardrails[0]: must name guardrails by guardrail_name"},
	} {
		_, err := Parse("c.yaml", []byte(c.src), mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want an error containing %q", c.src, err, c.msg)
		}
	}
	f, err := Parse("c.yaml", []byte(entry("lonely", "{guardrail: mcpbus_nats, mode: pre_mcp_call}")), mapEnv(nil))
	if err != nil || len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], `guard "lonely" runs on no server`) {
		t.Errorf("a guard no server runs: %v %q", err, f.Warnings)
	}
}
