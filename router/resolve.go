package router

import "github.com/mcpbus/mcpbus/bus"

// resolve picks the servers this message is for (bus.Resolve, the rule the
// ingress and the workers apply too): one server (many is nil), which gets the
// message as it came and answers with bare names, or several, which the
// router aggregates.
func (r *Router) resolve(env bus.Envelope) (bus.ServerSpec, []bus.ServerSpec, *bus.Error) {
	return bus.Resolve(r.cache, env)
}
