package agentworkers

import (
	"encoding/json"
	"slices"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// card answers agent a's card (agent_card_params, as configured; the
// ingress points its URLs at the gateway) to a caller that may see and
// use the agent. It answers inline: nothing in it waits.
func (s *Service) card(a *agent, req micro.Request) {
	env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		bus.RespondError(req, bus.AsError(err))
		return
	}
	if e := a.admit(env); e != nil {
		bus.RespondError(req, e)
		return
	}
	_ = req.Respond(a.c.Card)
}

// listAgents answers the agents of this process the caller may see and
// use: the config file's in its order, then the bucket's by name; a JSON
// array of bus.AgentSummary.
func (s *Service) listAgents(req micro.Request) {
	env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		bus.RespondError(req, bus.AsError(err))
		return
	}
	out := []bus.AgentSummary{}
	for _, a := range s.agentsInOrder() {
		if a.admit(env) == nil {
			out = append(out, a.summary())
		}
	}
	b, _ := json.Marshal(out)
	_ = req.Respond(b)
}

// agentsInOrder are the served agents: the file's in order, then the
// bucket's by name.
func (s *Service) agentsInOrder() []*agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*agent
	for _, n := range s.file {
		if sv := s.served[n]; sv != nil {
			out = append(out, sv.a)
		}
	}
	var names []string
	for n, sv := range s.served {
		if !sv.fromFile {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, s.served[n].a)
	}
	return out
}
