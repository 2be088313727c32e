package toolworkers

// Guards (docs/GUARDS.md): the checks a worker runs on each tools/call of
// its server, before it goes upstream (phase request, on its arguments) and
// before its result returns (phase result), in the order the config lists
// them. Each passes, modifies (what the next guard and the upstream or the
// caller see) or blocks (a JSON-RPC error naming the guard). Built-in kinds
// run here; an external guard is asked over the bus (guards_external.go).
// A server with no guard has a nil chain, and a call costs a nil check.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// guardChain is a worker's guards by phase.
type guardChain struct {
	request []config.Guard
	result  []config.Guard
}

// checkGuardNames refuses a server that names a guard this process's config
// does not define: it would run without a check its owner asked for.
func checkGuardNames(guards []config.Guard, named []string) error {
	for _, n := range named {
		if !slices.ContainsFunc(guards, func(g config.Guard) bool { return g.Name == n }) {
			return fmt.Errorf("guardrails: %q is not a guard in this process's config (guardrails, docs/GUARDS.md); the server does not start without it", bus.Shorten(n, 64))
		}
	}
	return nil
}

// newGuardChain is the chain of the guards that apply to a server naming
// named; nil when none does.
func newGuardChain(guards []config.Guard, named []string) *guardChain {
	c := &guardChain{}
	for _, g := range guards {
		if !g.AppliesTo(named) {
			continue
		}
		if g.Request {
			c.request = append(c.request, g)
		}
		if g.Result {
			c.result = append(c.result, g)
		}
	}
	if len(c.request) == 0 && len(c.result) == 0 {
		return nil
	}
	return c
}

// guardRun is what the guards decided on one call, for its audit record.
type guardRun struct {
	decisions []bus.AuditGuard
}

func (r *guardRun) list() []bus.AuditGuard {
	if r == nil {
		return nil
	}
	return r.decisions
}

// guardVerdict is one guard's decision on a payload.
type guardVerdict struct {
	decision string
	reason   string
	payload  json.RawMessage // the replacement, with modify
	err      *bus.Error      // block or fail closed: the caller's error
}

// guardRequest runs the request guards on a tools/call's arguments. It
// returns msg, with the arguments replaced if a guard modified them, or the
// error that refuses the call.
func (w *Worker) guardRequest(ctx context.Context, run *guardRun, env *bus.Envelope, msg *bus.Message, tool string) (*bus.Message, *bus.Error) {
	args, _, _ := bus.Field(msg.Params, "arguments")
	out, changed, e := w.runGuards(ctx, run, w.guards.request, bus.GuardPhaseRequest, env, tool, args)
	if e != nil || !changed {
		return msg, e
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(msg.Params, &params); err != nil {
		return msg, bus.Errorf(bus.ErrInvalidParams, "tools/call: params are not a JSON object")
	}
	params["arguments"] = out
	p, err := json.Marshal(params)
	if err != nil {
		return msg, bus.Errorf(bus.ErrInternal, "the guards' arguments could not be encoded")
	}
	m := *msg
	m.Params = p
	return &m, nil
}

// guardResult runs the result guards on a tools/call's result.
func (w *Worker) guardResult(ctx context.Context, run *guardRun, env *bus.Envelope, resp *bus.Message, tool string) (*bus.Message, error) {
	out, changed, e := w.runGuards(ctx, run, w.guards.result, bus.GuardPhaseResult, env, tool, resp.Result)
	if e != nil {
		return nil, e
	}
	if !changed {
		return resp, nil
	}
	r := *resp
	r.Result = out
	return &r, nil
}

// runGuards runs guards in order on payload, each seeing what the last
// left, until one blocks or fails closed.
func (w *Worker) runGuards(ctx context.Context, run *guardRun, guards []config.Guard, phase string, env *bus.Envelope, tool string, payload json.RawMessage) (json.RawMessage, bool, *bus.Error) {
	changed := false
	for _, g := range guards {
		start := time.Now()
		var v guardVerdict
		if g.Kind == config.GuardNATS {
			v = w.askGuard(ctx, g, phase, env, tool, payload) // guards_external.go
		} else {
			v = builtinGuard(g, phase, payload)
		}
		run.decisions = append(run.decisions, bus.AuditGuard{Name: g.Name, Phase: phase, Decision: v.decision, Reason: v.reason,
			MS: float64(time.Since(start).Microseconds()) / 1000})
		w.metrics.guardDecision(w.up.Name, g.Name, phase, v.decision) // metrics_guards.go
		if v.err != nil {
			w.log.Info("guard refused a call", "request_id", env.RequestID, "tool", tool, "guard", g.Name, "phase", phase, "decision", v.decision, "reason", v.reason)
			return payload, changed, v.err
		}
		if v.decision == bus.GuardModify {
			payload, changed = v.payload, true
		}
	}
	return payload, changed, nil
}

// what names a phase's payload in reasons, with its verb: "arguments
// are", "result is".
func what(phase string) string {
	if phase == bus.GuardPhaseResult {
		return "result"
	}
	return "arguments"
}

func whatIs(phase string) string {
	if phase == bus.GuardPhaseResult {
		return "the result is"
	}
	return "the arguments are"
}

// builtinGuard runs a built-in guard on payload.
func builtinGuard(g config.Guard, phase string, payload json.RawMessage) guardVerdict {
	block := func(reason string) guardVerdict {
		return guardVerdict{decision: bus.GuardBlock, reason: reason, err: bus.GuardBlocked(g.Name, phase, reason)}
	}
	switch g.Kind {
	case config.GuardSizeLimit:
		if int64(len(payload)) > g.MaxBytes {
			return block(fmt.Sprintf("%s %d bytes, over the limit of %d", whatIs(phase), len(payload), g.MaxBytes))
		}
	case config.GuardBlockPatterns:
		if len(payload) == 0 {
			break
		}
		v, ok := decodeJSON(payload)
		if !ok {
			return block(whatIs(phase) + " not JSON")
		}
		var hit string
		walkStrings(v, func(s string) (string, bool) {
			for _, p := range g.Patterns {
				if hit == "" && p.RE.MatchString(s) {
					hit = p.Name
				}
			}
			return s, false
		})
		if hit != "" {
			return block("a string in the " + what(phase) + " matches " + hit)
		}
	case config.GuardMask:
		if len(payload) == 0 {
			break
		}
		v, ok := decodeJSON(payload)
		if !ok {
			return block(whatIs(phase) + " not JSON")
		}
		counts := map[string]int{}
		v, changed := walkStrings(v, func(s string) (string, bool) {
			masked := false
			for _, p := range g.Patterns {
				if !p.RE.MatchString(s) {
					continue
				}
				s = p.RE.ReplaceAllStringFunc(s, func(string) string {
					counts[p.Name]++
					return maskText(p.Name)
				})
				masked = true
			}
			return s, masked
		})
		if !changed {
			break
		}
		out, err := encodeJSON(v)
		if err != nil {
			return block("the masked " + what(phase) + " could not be encoded")
		}
		return guardVerdict{decision: bus.GuardModify, reason: maskReason(counts), payload: out}
	}
	return guardVerdict{decision: bus.GuardPass}
}

// maskText replaces a match: [MASKED:<preset>], or [MASKED] for the file's
// own patterns (whose text a caller need not learn).
func maskText(name string) string {
	if strings.HasPrefix(name, "patterns[") {
		return "[MASKED]"
	}
	return "[MASKED:" + name + "]"
}

func maskReason(counts map[string]int) string {
	names := make([]string, 0, len(counts))
	for n, c := range counts {
		names = append(names, n+"×"+strconv.Itoa(c))
	}
	slices.Sort(names)
	return "masked " + strings.Join(names, ", ")
}

// decodeJSON decodes payload keeping numbers as written.
func decodeJSON(payload json.RawMessage) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return nil, false
	}
	return v, true
}

// encodeJSON encodes v without escaping HTML characters.
func encodeJSON(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// walkStrings calls f on every string value (not object keys) in v,
// replacing it with what f returns; changed says whether any was replaced.
func walkStrings(v any, f func(string) (string, bool)) (any, bool) {
	switch x := v.(type) {
	case string:
		return f(x)
	case map[string]any:
		changed := false
		for k, e := range x {
			if n, c := walkStrings(e, f); c {
				x[k], changed = n, true
			}
		}
		return x, changed
	case []any:
		changed := false
		for i, e := range x {
			if n, c := walkStrings(e, f); c {
				x[i], changed = n, true
			}
		}
		return x, changed
	}
	return v, false
}

// auditGuarded records a tools/call refused before it went upstream, by a
// request guard or after the guards ran (run is nil when none did), with
// msg as the caller sent it: denied when a guard blocked it (or a
// permission refused it), else error (a fail-closed guard did not answer,
// a missing per-user credential, ...).
func (w *Worker) auditGuarded(env bus.Envelope, msg *bus.Message, tool string, received time.Time, e *bus.Error, run *guardRun) {
	if w.audit == nil {
		return
	}
	outcome := bus.AuditError
	switch e.Kind {
	case bus.ErrGuardBlocked, bus.ErrToolNotAllowed, bus.ErrNotPermitted:
		outcome = bus.AuditDenied
	}
	w.auditCall(callRecord{env: env, method: msg.Method, tool: tool, received: received, params: msg.Params, errCode: e.Kind.Code, guards: run.list()}, outcome)
}
