package agentworkers

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
)

// agent is one served agent: its config (with its credentials), the rule
// input of its permission, and where each wire reaches it.
type agent struct {
	c      config.Agent
	info   bus.AgentInfo
	urls   map[string]string // wire -> JSON-RPC URL
	header http.Header       // the credentials and configured headers
	scrub  *credential.Scrubber
	client *http.Client
	log    *slog.Logger
}

func newAgent(c config.Agent, transport http.RoundTripper, log *slog.Logger) *agent {
	a := &agent{c: c, info: bus.AgentInfo{Name: c.Name, AccessGroups: c.AccessGroups}, log: log,
		urls:   interfaceURLs(c),
		header: http.Header{},
		client: &http.Client{Transport: transport, CheckRedirect: credential.RefuseCrossOrigin}}
	secrets := []string{}
	if c.APIKey != "" {
		a.header.Set("Authorization", "Bearer "+c.APIKey)
		secrets = append(secrets, c.APIKey, "Bearer "+c.APIKey)
	}
	for k, v := range c.Headers { // configured headers win over api_key's
		a.header.Set(k, v)
		secrets = append(secrets, v)
	}
	a.scrub = credential.NewScrubber(secrets...)
	return a
}

// interfaceURLs reads, from the card, the JSON-RPC URL of each wire the
// agent lists in supportedInterfaces; a wire it does not list is called at
// the agent's URL (config.Agent.URL).
func interfaceURLs(c config.Agent) map[string]string {
	var card struct {
		Interfaces []struct {
			URL             string `json:"url"`
			ProtocolBinding string `json:"protocolBinding"`
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"supportedInterfaces"`
	}
	_ = json.Unmarshal(c.Card, &card)
	urls := map[string]string{}
	for _, in := range card.Interfaces {
		if in.URL == "" || !strings.EqualFold(in.ProtocolBinding, "JSONRPC") && in.ProtocolBinding != "" {
			continue
		}
		w := bus.A2AV10
		if strings.HasPrefix(in.ProtocolVersion, "0.") {
			w = bus.A2AV03
		}
		if _, seen := urls[w]; !seen && (strings.HasPrefix(in.URL, "http://") || strings.HasPrefix(in.URL, "https://")) {
			urls[w] = in.URL
		}
	}
	return urls
}

// url is where the agent takes wire w.
func (a *agent) url(w string) string {
	if u := a.urls[w]; u != "" {
		return u
	}
	return a.c.URL
}

// admit refuses a caller that may not see the agent (an external caller
// and an internal-only agent: the same answer as an agent that does not
// exist) or may not use it (the key's or its team's agents).
func (a *agent) admit(env bus.Envelope) *bus.Error {
	if env.IPClass != bus.Internal && !a.c.Public {
		return bus.UnknownAgent(a.c.Name)
	}
	if why := env.Caller.Permissions.AgentDenial(a.info); why != "" {
		return bus.Errorf(bus.ErrAgentNotAllowed, "agent %q is not allowed for your key: %s; contact the proxy admin for access", a.c.Name, why)
	}
	return nil
}

// summary is the agent as the list answers it: no credentials.
func (a *agent) summary() bus.AgentSummary {
	return bus.AgentSummary{AgentID: a.c.Name, AgentName: a.c.Name, Card: a.c.Card,
		Params: bus.AgentParams{MakePublic: a.c.Public, AccessGroups: a.c.AccessGroups}}
}
