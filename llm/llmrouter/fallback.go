package llmrouter

import (
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// Fallbacks, LiteLLM's way: when a group's own deployments (with their
// retries) did not answer, the groups its fallbacks name are tried in
// order, each with its own retries: context_window_fallbacks after a
// context-window error, content_policy_fallbacks after a content-policy
// refusal, fallbacks (else default_fallbacks) after any other failure a
// deployment could cause. A request the provider refused for what it asked
// has none. An entry names a model group, or one deployment by its
// model_info.id. A fallback the caller's key may not use is skipped: a
// fallback never widens what a key may reach.

// MaxFallbacks bounds the fallbacks one request tries (LiteLLM's
// max_fallbacks default).
const MaxFallbacks = 5

// target is one fallback: a group, and the deployments of it to try.
type target struct {
	group       *group
	deployments []config.Model
}

// fallbacks are the targets to try after g failed with e, for the caller
// of env.
func (r *Router) fallbacks(env bus.Envelope, g *group, e *bus.Error) []target {
	rt := r.o.Routing
	var names []string
	switch {
	case e.Kind == bus.ErrContextLength:
		names = rt.ContextWindowFallbacks[g.info.Name]
	case e.Kind == bus.ErrContentPolicy:
		names = rt.ContentPolicyFallbacks[g.info.Name]
	case !retryable(e):
		return nil
	default:
		names = rt.Fallbacks[g.info.Name]
		if len(names) == 0 {
			names = rt.DefaultFallbacks
		}
	}
	var out []target
	for _, name := range names {
		if len(out) == MaxFallbacks {
			break
		}
		t, ok := r.target(name)
		if !ok || t.group == g || !env.Caller.Permissions.AllowsModel(t.group.info) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// target finds a fallback entry: a group's name, or a deployment's id.
func (r *Router) target(name string) (target, bool) {
	if g := r.groups[name]; g != nil {
		return target{group: g, deployments: g.deployments}, true
	}
	if d, ok := r.byID[name]; ok {
		return target{group: r.groups[d.Name], deployments: []config.Model{d}}, true
	}
	return target{}, false
}
