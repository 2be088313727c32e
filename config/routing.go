package config

import (
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// router_settings and the routing keys of litellm_settings (LiteLLM reads
// fallbacks and retries from either), as typed values the LLM router will
// use (plan: docs/plans/llm-a2a.md, step 4). Keys LiteLLM has that mcpbus
// does not use are a warning naming them.

// Routing is how requests for a model group pick and replace deployments.
type Routing struct {
	// Strategy is routing_strategy ("" = simple-shuffle).
	Strategy string
	// NumRetries are retries on the group before fallbacks; AllowedFails
	// and CooldownTime rule a deployment's cooldown; RetryAfter is the
	// least wait before a retry; Timeout bounds a call (0: unset).
	NumRetries, AllowedFails int
	// NumRetriesSet: num_retries was given (0 then means no retry).
	NumRetriesSet                     bool
	CooldownTime, RetryAfter, Timeout time.Duration
	// Fallbacks and the two kinds of its own: group -> groups in order.
	Fallbacks, ContextWindowFallbacks, ContentPolicyFallbacks map[string][]string
	DefaultFallbacks                                          []string
}

var (
	routingStrategies = []string{"simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
		"latency-based-routing", "cost-based-routing"}
	routingKeys       = []string{"routing_strategy", "num_retries", "allowed_fails", "cooldown_time", "retry_after", "timeout", "request_timeout", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks"}
	litellmRouterKeys = []string{"redis_host", "redis_port", "redis_password", "model_group_alias", "retry_policy",
		"model_group_retry_policy", "allowed_fails_policy", "enable_pre_call_checks", "enable_tag_filtering",
		"disable_cooldowns", "optional_pre_call_checks", "routing_groups", "max_retries", "cache_responses",
		"routing_strategy_args", "provider_budget_config"}
	litellmSettingsKeys = []string{"drop_params", "success_callback", "failure_callback", "callbacks", "cache",
		"cache_params", "set_verbose", "json_logs", "turn_off_message_logging", "redact_user_api_key_info",
		"request_timeout", "telemetry", "check_provider_endpoint", "max_budget", "budget_duration", "default_team_settings",
		"default_internal_user_params", "modify_params", "return_response_headers", "enable_preview_features"}
)

// read reads one of the two sections into r (router_settings is read
// after litellm_settings, and wins); section names it. Keys of
// litellm_settings that are not routing keys are LiteLLM's own.
func (r *Routing) read(p *problems, section string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	if !isMapping(n) {
		p.errorf(section, "must be a mapping")
		return
	}
	var unused []string
	for _, kv := range pairs(n) {
		path := section + "." + kv.key
		switch kv.key {
		case "routing_strategy":
			s, _ := p.str(path, kv.val)
			if !slices.Contains(routingStrategies, s) {
				p.errorf(path, "must be one of "+joinQuoted(routingStrategies))
			} else if s != "simple-shuffle" {
				p.warn(path, strconv.Quote(s)+" is served as simple-shuffle (order, then a draw weighted by weight, rpm or tpm) for now")
			}
			r.Strategy = s
		case "num_retries":
			r.NumRetries, r.NumRetriesSet = p.count(path, kv.val), true
		case "allowed_fails":
			r.AllowedFails = p.count(path, kv.val)
		case "cooldown_time":
			r.CooldownTime = p.seconds(path, kv.val)
		case "retry_after":
			r.RetryAfter = p.seconds(path, kv.val)
		case "timeout", "request_timeout":
			r.Timeout = p.seconds(path, kv.val)
		case "fallbacks":
			r.Fallbacks = p.fallbacks(path, kv.val)
		case "context_window_fallbacks":
			r.ContextWindowFallbacks = p.fallbacks(path, kv.val)
		case "content_policy_fallbacks":
			r.ContentPolicyFallbacks = p.fallbacks(path, kv.val)
		case "default_fallbacks":
			r.DefaultFallbacks = p.strList(path, kv.val)
		default:
			unused = append(unused, kv.key)
		}
	}
	if section == "litellm_settings" {
		reportUnknown(p, section, "", unused, nil, litellmSettingsKeys)
	} else {
		reportUnknown(p, section, "", unused, routingKeys, litellmRouterKeys)
	}
}

// seconds reads a number of seconds, 0 or more.
func (p *problems) seconds(path string, n *yaml.Node) time.Duration {
	v, ok := p.cost(path, n)
	if !ok {
		return 0
	}
	return time.Duration(v * float64(time.Second))
}

// fallbacks reads LiteLLM's list of one-key mappings, group -> [groups].
func (p *problems) fallbacks(path string, n *yaml.Node) map[string][]string {
	if isNull(n) {
		return nil
	}
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf(path, `must be a list of {group: [fallback groups]}, e.g. [{"gpt-4o": ["claude"]}]`)
		return nil
	}
	out := map[string][]string{}
	for i, item := range dn.Content {
		at := path + "[" + strconv.Itoa(i) + "]"
		ps := pairs(item)
		if !isMapping(item) || len(ps) != 1 {
			p.errorf(at, "must be one {group: [fallback groups]}")
			continue
		}
		out[ps[0].key] = p.strList(at+"."+ps[0].key, ps[0].val)
	}
	return out
}

// checkFallbacks warns about fallbacks naming a group no served deployment
// has: LiteLLM would fail on them at the first failure.
func checkFallbacks(p *problems, r *Routing, models []Model) {
	groups := map[string]bool{}
	for _, m := range models {
		groups[m.Name] = true
		groups[m.ID] = true
	}
	check := func(what string, m map[string][]string) {
		for from, tos := range m {
			for _, to := range tos {
				if !groups[to] {
					p.warn(what, "fallback of "+strconv.Quote(from)+" to "+strconv.Quote(to)+": no served deployment has that name or id")
				}
			}
		}
	}
	check("fallbacks", r.Fallbacks)
	check("context_window_fallbacks", r.ContextWindowFallbacks)
	check("content_policy_fallbacks", r.ContentPolicyFallbacks)
	for _, to := range r.DefaultFallbacks {
		if !groups[to] {
			p.warn("default_fallbacks", "fallback to "+strconv.Quote(to)+": no served deployment has that name or id")
		}
	}
}

func joinQuoted(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(v)
	}
	return out
}
