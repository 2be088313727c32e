package config

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// Guards (docs/GUARDS.md): the guardrails list's entries of mcpbus's own
// kinds, which the tool workers run on every tools/call of the servers they
// apply to: before it goes upstream (mode pre_mcp_call, on its arguments)
// and before its result returns (post_mcp_call). Read strictly: an unknown
// key, a bad pattern or an unknown preset is an error naming its path.

// The guard kinds (litellm_params.guardrail).
const (
	GuardSizeLimit     = "mcpbus_size_limit"     // arguments or result over max_bytes: block
	GuardBlockPatterns = "mcpbus_block_patterns" // a string in the arguments or result matches: block
	GuardMask          = "mcpbus_mask"           // matches in the arguments' or result's strings are masked
	GuardNATS          = "mcpbus_nats"           // an external guard answering on mcpbus.v1.guard.<name>
)

// GuardKinds are the kinds mcpbus runs.
var GuardKinds = []string{GuardSizeLimit, GuardBlockPatterns, GuardMask, GuardNATS}

// LiteLLM's MCP guardrail modes mcpbus runs.
const (
	GuardModePre  = "pre_mcp_call"  // on the arguments, before the call goes upstream
	GuardModePost = "post_mcp_call" // on the result, before it returns
)

// Defaults and bounds of an external guard's timeout.
const (
	DefaultGuardTimeout = 2 * time.Second
	MaxGuardTimeout     = time.Minute
)

// Guard is one mcpbus guard.
type Guard struct {
	Name string // guardrail_name: a subject token (bus.CheckGuardName)
	Kind string // GuardKinds
	// Request and Result: the phases it runs in (mode pre_mcp_call,
	// post_mcp_call).
	Request, Result bool
	// DefaultOn: it runs on every server; else on those whose guardrails
	// name it.
	DefaultOn bool
	// MaxBytes (mcpbus_size_limit): the arguments' or result's JSON size
	// limit.
	MaxBytes int64
	// Patterns (mcpbus_block_patterns, mcpbus_mask): presets first, then
	// the file's own patterns.
	Patterns []GuardPattern
	// Timeout and FailOpen (mcpbus_nats): how long the worker waits for
	// the guard's answer, and whether the call proceeds (open) or fails
	// (closed, the default) when none comes or it is unreadable.
	Timeout  time.Duration
	FailOpen bool
}

// AppliesTo reports whether g runs on a server whose guardrails are named.
func (g Guard) AppliesTo(named []string) bool {
	return g.DefaultOn || slices.Contains(named, g.Name)
}

// GuardPattern is one compiled pattern and the name a mask shows for it.
type GuardPattern struct {
	Name string // the preset's name, or "patterns[<i>]"
	RE   *regexp.Regexp
}

// GuardPresets are the named patterns of common secrets and personal data
// (litellm_params.presets). Heuristics: they catch the usual shapes, not
// every one.
var GuardPresets = map[string]string{
	"email":          `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`,
	"aws_access_key": `\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b`,
	"bearer_token":   `(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}`,
	"credit_card":    `\b(?:\d{4}[ -]?){3}\d{4}\b|\b3[47]\d{2}[ -]?\d{6}[ -]?\d{5}\b`,
	"jwt":            `\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+`,
	"github_token":   `\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b`,
	"private_key":    `-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`,
	"us_ssn":         `\b\d{3}-\d{2}-\d{4}\b`,
}

var guardParamKeys = map[string][]string{
	GuardSizeLimit:     {"guardrail", "mode", "default_on", "max_bytes"},
	GuardBlockPatterns: {"guardrail", "mode", "default_on", "patterns", "presets"},
	GuardMask:          {"guardrail", "mode", "default_on", "patterns", "presets"},
	GuardNATS:          {"guardrail", "mode", "default_on", "timeout", "fail"},
}

// readGuard reads an entry of one of mcpbus's kinds; ok is false when it
// has errors.
func readGuard(p *problems, at string, entry, params *yaml.Node, kind string, env LookupEnv) (Guard, bool) {
	errs := len(p.errs)
	g := Guard{Kind: kind}
	if !slices.Contains(GuardKinds, kind) {
		msg := "is not a guard kind mcpbus runs (" + strings.Join(GuardKinds, ", ") + ")"
		if near := nearest(kind, GuardKinds); near != "" {
			msg = "is not a guard kind mcpbus runs; did you mean " + strconv.Quote(near) + "?"
		}
		p.errorf(at+".litellm_params.guardrail", msg)
		return g, false
	}
	var unused []string
	for _, kv := range pairs(entry) {
		switch kv.key {
		case "guardrail_name":
			g.Name, _ = p.str(at+".guardrail_name", kv.val)
		case "litellm_params":
		default:
			unused = append(unused, kv.key)
		}
	}
	strictUnknown(p, at, unused, guardrailKeys, litellmGuardKeys)
	if err := bus.CheckGuardName(g.Name); err != nil {
		p.errorf(at+".guardrail_name", "must be "+strings.TrimPrefix(err.Error(), strconv.Quote(g.Name)+" is not ")+": servers name it, and an external guard's subject is made of it")
	}
	at += ".litellm_params"
	known := guardParamKeys[kind]
	var patterns, presets *yaml.Node
	modeSet := false
	unused = nil
	for _, kv := range pairs(params) {
		path := at + "." + kv.key
		switch {
		case kv.key == "guardrail":
		case kv.key == "mode":
			modeSet = true
			g.Request, g.Result = readGuardModes(p, path, kv.val)
		case kv.key == "default_on":
			g.DefaultOn = p.boolean(path, kv.val, env)
		case kv.key == "max_bytes" && kind == GuardSizeLimit:
			if s := readString(p, path, kv.val, env); s != "" {
				v, err := parseBytes(s)
				if err != nil {
					p.errorf(path, `must be a size: a number of bytes, or with KiB, MiB or GiB ("64KiB")`)
				}
				g.MaxBytes = v
			}
		case kv.key == "patterns" && slices.Contains(known, "patterns"):
			patterns = kv.val
		case kv.key == "presets" && slices.Contains(known, "presets"):
			presets = kv.val
		case kv.key == "timeout" && kind == GuardNATS:
			if s := readString(p, path, kv.val, env); s != "" {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 || d > MaxGuardTimeout {
					p.errorf(path, `must be a duration above 0 and at most 1m, such as "500ms" or "2s"`)
				}
				g.Timeout = d
			}
		case kv.key == "fail" && kind == GuardNATS:
			switch v := readString(p, path, kv.val, env); v {
			case "closed", "":
			case "open":
				g.FailOpen = true
			default:
				p.errorf(path, "must be closed (no answer in time fails the call; the default) or open (the call proceeds), got "+strconv.Quote(bus.Shorten(v, 32)))
			}
		default:
			unused = append(unused, kv.key)
		}
	}
	for _, k := range unused {
		msg := "unknown key (" + kind + " takes " + strings.Join(known, ", ") + ")"
		if near := nearest(k, known); near != "" {
			msg = "unknown key; did you mean " + strconv.Quote(near) + "?"
		}
		p.errorf(joinPath(at, k), msg)
	}
	if !modeSet {
		p.errorf(at+".mode", "is required: "+GuardModePre+" (on the arguments), "+GuardModePost+" (on the result), or a list of both")
	}
	switch kind {
	case GuardSizeLimit:
		if g.MaxBytes == 0 && len(p.errs) == errs {
			p.errorf(at+".max_bytes", "is required")
		}
	case GuardBlockPatterns, GuardMask:
		g.Patterns = readGuardPatterns(p, at, presets, patterns)
		if len(g.Patterns) == 0 && len(p.errs) == errs {
			p.errorf(at, "needs patterns (regular expressions) or presets ("+strings.Join(presetNames(), ", ")+")")
		}
	case GuardNATS:
		if g.Timeout == 0 {
			g.Timeout = DefaultGuardTimeout
		}
	}
	return g, len(p.errs) == errs
}

// readGuardModes reads mode: one of LiteLLM's MCP modes mcpbus runs, or a
// list of them.
func readGuardModes(p *problems, path string, n *yaml.Node) (pre, post bool) {
	var modes []string
	if dn := deref(n); dn != nil && dn.Kind == yaml.SequenceNode {
		modes = p.strList(path, n)
	} else if s, ok := p.str(path, n); ok {
		modes = []string{s}
	}
	for _, m := range modes {
		switch m {
		case GuardModePre:
			pre = true
		case GuardModePost:
			post = true
		case "during_mcp_call":
			p.errorf(path, "during_mcp_call is not run by mcpbus: a guard runs before the call goes upstream ("+GuardModePre+") or before its result returns ("+GuardModePost+")")
		default:
			p.errorf(path, "must be "+GuardModePre+" or "+GuardModePost+" (or a list of both), got "+strconv.Quote(bus.Shorten(m, 32)))
		}
	}
	if len(modes) == 0 {
		p.errorf(path, "must be "+GuardModePre+" or "+GuardModePost+" (or a list of both)")
	}
	return pre, post
}

// readGuardPatterns compiles presets and patterns, in that order.
func readGuardPatterns(p *problems, at string, presets, patterns *yaml.Node) []GuardPattern {
	var out []GuardPattern
	for i, name := range p.strList(at+".presets", presets) {
		src, ok := GuardPresets[name]
		if !ok {
			msg := "is not a preset (" + strings.Join(presetNames(), ", ") + ")"
			if near := nearest(name, presetNames()); near != "" {
				msg = "is not a preset; did you mean " + strconv.Quote(near) + "?"
			}
			p.errorf(at+".presets["+strconv.Itoa(i)+"]", msg)
			continue
		}
		out = append(out, GuardPattern{Name: name, RE: regexp.MustCompile(src)})
	}
	for i, src := range p.strList(at+".patterns", patterns) {
		path := at + ".patterns[" + strconv.Itoa(i) + "]"
		if src == "" {
			p.errorf(path, "must not be empty (it would match everything)")
			continue
		}
		re, err := regexp.Compile(src)
		if err != nil {
			p.errorf(path, "is not a valid regular expression (Go RE2 syntax): "+strings.TrimPrefix(err.Error(), "error parsing regexp: "))
			continue
		}
		if re.MatchString("") {
			p.errorf(path, "matches the empty string, so it would match every string")
			continue
		}
		out = append(out, GuardPattern{Name: "patterns[" + strconv.Itoa(i) + "]", RE: re})
	}
	return out
}

func presetNames() []string {
	names := make([]string, 0, len(GuardPresets))
	for n := range GuardPresets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkServerGuards makes a server's guardrails name guards of this file,
// and warns of a guard no server runs.
func (f *File) checkServerGuards(p *problems) {
	used := map[string]bool{}
	for _, s := range f.Servers {
		for i, name := range s.Guardrails {
			used[name] = true
			if !slices.ContainsFunc(f.Guards, func(g Guard) bool { return g.Name == name }) {
				p.errorf(serverPath(s.Name)+".guardrails["+strconv.Itoa(i)+"]", strconv.Quote(name)+" is not the guardrail_name of a guard of kind "+strings.Join(GuardKinds, ", ")+" in guardrails")
			}
		}
	}
	for _, g := range f.Guards {
		if !g.DefaultOn && !used[g.Name] {
			p.warn("guardrails", "guard "+strconv.Quote(g.Name)+" runs on no server: set default_on: true, or name it in a server's guardrails")
		}
	}
}
