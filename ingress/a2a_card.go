package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The A2A cards and the agent list (docs/AGENTS.md). Every card a caller
// gets names the gateway, never the agent: url (0.3) and
// supportedInterfaces (1.0) point at /a2a/{agent} on the URL the caller
// reached, in both wires (the workers translate), and what would lead a
// caller past the gateway or mislead it (other transports, the agent's own
// security schemes, signatures over the card as the agent wrote it, the
// extended card, which the gateway does not relay) is left out. Like
// LiteLLM's, the card routes need a key and follow the agent's
// visibility and the key's agents.

// a2aCardRoutes registers the card and list routes.
func (g *Ingress) a2aCardRoutes(mux *http.ServeMux) {
	for _, name := range []string{"agent-card.json", "agent.json"} {
		mux.HandleFunc("/a2a/{agent}/.well-known/"+name, g.serveAgentCard)
		mux.HandleFunc("/.well-known/"+name, g.serveGatewayCard)
	}
	mux.HandleFunc("/v1/agents", g.serveAgents)
	mux.HandleFunc("/v1/agents/{agent_id}", g.serveAgent)
}

// serveAgentCard answers one agent's card.
func (g *Ingress) serveAgentCard(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	env, ok := g.cardCaller(w, r)
	if !ok {
		return
	}
	agent := r.PathValue("agent")
	if !bus.ValidToken(agent) {
		writeRESTError(w, bus.UnknownAgent(agent))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	resp, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.AgentCard(agent), Header: env.Header()})
	if e := agentRequestError(agent, resp, err); e != nil {
		writeRESTError(w, e)
		return
	}
	card, err := gatewayCard(resp.Data, g.baseURL(r)+"/a2a/"+agent)
	if err != nil {
		writeRESTError(w, bus.Errorf(bus.ErrUpstreamProtocol, "agent %s: its configured card is not a JSON object", agent))
		return
	}
	writeJSON(w, http.StatusOK, card)
}

// serveAgents answers GET /v1/agents: the agents the caller may see and
// use, LiteLLM's agent records, their cards pointing at the gateway; a POST
// creates one (agentWrite).
func (g *Ingress) serveAgents(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		g.agentWrite(w, r, "create", bus.SubjectAgentCreate, "")
		return
	}
	list, ok := g.callerAgents(w, r)
	if !ok {
		return
	}
	b, _ := json.Marshal(list)
	writeJSON(w, http.StatusOK, b)
}

// serveAgent answers GET /v1/agents/{agent_id} (the id is the name); PUT
// replaces the agent and DELETE deletes it (agentWrite).
func (g *Ingress) serveAgent(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	switch r.Method {
	case http.MethodPut:
		g.agentWrite(w, r, "update", bus.SubjectAgentUpdate, r.PathValue("agent_id"))
		return
	case http.MethodDelete:
		g.agentWrite(w, r, "delete", bus.SubjectAgentDelete, r.PathValue("agent_id"))
		return
	}
	list, ok := g.callerAgents(w, r)
	if !ok {
		return
	}
	id := r.PathValue("agent_id")
	for _, a := range list {
		if a.AgentID == id {
			b, _ := json.Marshal(a)
			writeJSON(w, http.StatusOK, b)
			return
		}
	}
	writeRESTError(w, bus.UnknownAgent(id))
}

// serveGatewayCard answers the gateway's own card: a directory, not an
// agent. Its skills are the agents the caller may see and use, one each
// (id: the agent's name), and agents lists where each is called and where
// its card is; its url, /a2a, answers that an agent must be named.
func (g *Ingress) serveGatewayCard(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	env, ok := g.cardCaller(w, r)
	if !ok {
		return
	}
	list, e := g.agentList(r, env)
	if e != nil {
		writeRESTError(w, e)
		return
	}
	base := g.baseURL(r)
	type skill struct {
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Tags        []string `json:"tags"`
	}
	type entry struct {
		Name    string `json:"agent_name"`
		URL     string `json:"url"`
		CardURL string `json:"card_url"`
	}
	card := struct {
		Name               string   `json:"name"`
		Description        string   `json:"description"`
		URL                string   `json:"url"`
		Version            string   `json:"version"`
		ProtocolVersion    string   `json:"protocolVersion"`
		Capabilities       any      `json:"capabilities"`
		DefaultInputModes  []string `json:"defaultInputModes"`
		DefaultOutputModes []string `json:"defaultOutputModes"`
		Skills             []skill  `json:"skills"`
		Agents             []entry  `json:"agents"`
	}{Name: "mcpbus", URL: base + "/a2a", Version: g.o.Version, ProtocolVersion: bus.A2AV03,
		Description:  "mcpbus gateway: each skill is an A2A agent this key may use, called at " + base + "/a2a/{skill id} (A2A 0.3 or 1.0)",
		Capabilities: map[string]bool{"streaming": true}, DefaultInputModes: []string{"text"}, DefaultOutputModes: []string{"text"},
		Skills: []skill{}, Agents: []entry{}}
	for _, a := range list {
		var c struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		}
		_ = json.Unmarshal(a.Card, &c)
		if c.Name == "" {
			c.Name = a.AgentName
		}
		card.Skills = append(card.Skills, skill{ID: a.AgentName, Name: c.Name, Description: c.Description, Tags: []string{"a2a-agent"}})
		card.Agents = append(card.Agents, entry{Name: a.AgentName, URL: base + "/a2a/" + a.AgentName,
			CardURL: base + "/a2a/" + a.AgentName + "/.well-known/agent-card.json"})
	}
	b, _ := json.Marshal(card)
	writeJSON(w, http.StatusOK, b)
}

// agentWrite relays one of the agent admin API's writes (LiteLLM's POST
// /v1/agents, PUT and DELETE /v1/agents/{agent_id}) to the registry,
// master key only, as the registry API is (relayAsMaster).
func (g *Ingress) agentWrite(w http.ResponseWriter, r *http.Request, op, subject, agent string) {
	g.relayAsMaster(w, r, masterRelay{api: "agent", service: "registry service", forbidden: "only the master key may manage agents",
		logKey: "op", logVal: "agent " + op, subject: subject}, func() ([]byte, *bus.Error) {
		if op == "delete" {
			b, _ := json.Marshal(bus.AgentRef{AgentID: agent})
			return b, nil
		}
		body, e := g.readAdminBody(w, r)
		if e != nil {
			return nil, e
		}
		b, _ := json.Marshal(bus.AgentWrite{AgentID: agent, Body: body})
		return b, nil
	})
}

// cardCaller is a2aCaller for the REST-shaped routes.
func (g *Ingress) cardCaller(w http.ResponseWriter, r *http.Request) (bus.Envelope, bool) {
	env, e := g.envelopeOf(r) // rest.go
	if e != nil {
		writeRESTError(w, e)
	}
	return env, e == nil
}

// callerAgents is agentList for r's caller; false when it answered r with
// the refusal.
func (g *Ingress) callerAgents(w http.ResponseWriter, r *http.Request) ([]bus.AgentSummary, bool) {
	env, ok := g.cardCaller(w, r)
	if !ok {
		return nil, false
	}
	list, e := g.agentList(r, env)
	if e != nil {
		writeRESTError(w, e)
		return nil, false
	}
	return list, true
}

// agentList asks the agent workers for the agents the caller may see and
// use, their cards pointing at the gateway. No agent workers: none.
func (g *Ingress) agentList(r *http.Request, env bus.Envelope) ([]bus.AgentSummary, *bus.Error) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	resp, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.SubjectAgentList, Header: env.Header()})
	if errors.Is(err, nats.ErrNoResponders) {
		return []bus.AgentSummary{}, nil
	}
	if err != nil {
		return nil, bus.RequestError("the agent workers", err)
	}
	if e := bus.ReplyError(resp); e != nil {
		return nil, e
	}
	var list []bus.AgentSummary
	if err := json.Unmarshal(resp.Data, &list); err != nil {
		return nil, bus.Errorf(bus.ErrInternal, "the agent workers sent an unreadable agent list")
	}
	base := g.baseURL(r)
	for i := range list {
		if c, err := gatewayCard(list[i].Card, base+"/a2a/"+list[i].AgentName); err == nil {
			list[i].Card = c
		}
	}
	return list, nil
}

// agentRequestError is the error of a request to an agent's workers: no
// worker is the same as no agent.
func agentRequestError(agent string, resp *nats.Msg, err error) *bus.Error {
	switch {
	case errors.Is(err, nats.ErrNoResponders), err == nil && bus.NoResponders(resp):
		return bus.UnknownAgent(agent)
	case err != nil:
		return bus.RequestError("the agent workers", err)
	}
	return bus.ReplyError(resp)
}

// gatewayCard is card as the gateway serves it, called at url: url and
// supportedInterfaces (JSON-RPC, 1.0 and 0.3) point at the gateway, and
// what names the agent's own endpoints or credentials is left out.
func gatewayCard(card []byte, url string) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(card))
	d.UseNumber()
	var c map[string]any
	if err := d.Decode(&c); err != nil || c == nil {
		return nil, errors.New("not a JSON object")
	}
	c["url"] = url
	c["preferredTransport"] = "JSONRPC"
	c["supportedInterfaces"] = []map[string]string{
		{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": bus.A2AV10},
		{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": bus.A2AV03},
	}
	for _, k := range []string{"additionalInterfaces", "securitySchemes", "security", "securityRequirements", "signatures", "supportsAuthenticatedExtendedCard"} {
		delete(c, k)
	}
	if caps, ok := c["capabilities"].(map[string]any); ok {
		delete(caps, "extendedAgentCard")
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(c); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
