package agentworkers

import (
	"encoding/json"

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

// list answers the agents of this process the caller may see and use, in
// configuration order: a JSON array of bus.AgentSummary.
func (s *Service) list(req micro.Request) {
	env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		bus.RespondError(req, bus.AsError(err))
		return
	}
	out := []bus.AgentSummary{}
	for _, a := range s.agents {
		if a.admit(env) == nil {
			out = append(out, a.summary())
		}
	}
	b, _ := json.Marshal(out)
	_ = req.Respond(b)
}
