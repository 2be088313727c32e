package registry

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go/jetstream"
)

// The agent admin API's writes (LiteLLM's POST /v1/agents, PUT and DELETE
// /v1/agents/{agent_id}; docs/AGENTS.md): the registry checks an agent by
// the config file's rules (config.ParseAgentJSON), seals its literal
// credentials and keeps it in the agents bucket (bus/agents.go), which the
// agent workers follow. An agent of the config file cannot be written
// here: it is changed in the file.

func (reg *Registry) needAgentStore() *bus.Error {
	if reg.o.AgentsKV == nil {
		return bus.Errorf(bus.ErrServiceUnavailable, "registry: no agent store (JetStream) to write to")
	}
	return nil
}

// fromConfig refuses a write of an agent the config file defines.
func (reg *Registry) fromConfig(name string) *bus.Error {
	if slices.Contains(reg.o.ConfigAgents, name) {
		return bus.Errorf(bus.ErrConflict, "agent '%s' is defined in the config file (agents:): change it there", name)
	}
	return nil
}

func agentNotFound(name string) *bus.Error {
	return bus.Errorf(bus.ErrNotFound, "agent '%s' does not exist (or was not made through the API: GET /v1/agents lists the agents)", bus.Shorten(name, 64))
}

// agentCreate stores a new agent (source "api").
func (reg *Registry) agentCreate(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needAgentStore(); e != nil {
		return nil, e
	}
	var in bus.AgentWrite
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "agent create: unreadable request")
	}
	rec, e := reg.checkAgent(in.Body, nil)
	if e != nil {
		return nil, e
	}
	value, e := reg.sealAgent(rec)
	if e != nil {
		return nil, e
	}
	rev, err := reg.o.AgentsKV.Create(ctx, rec.AgentName, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, bus.Errorf(bus.ErrConflict, "agent '%s' already exists: change it with PUT /v1/agents/%s", rec.AgentName, rec.AgentName)
	} else if err != nil {
		return nil, reg.storeError("create agent", rec.AgentName, err)
	}
	reg.log.Info("registry: agent created", "agent", rec.AgentName, "revision", rev)
	return rec.Redacted(), nil
}

// agentUpdate replaces an agent made through the API with the body; a
// credential sent back as "[redacted]" (as GET shows it) keeps its value.
func (reg *Registry) agentUpdate(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needAgentStore(); e != nil {
		return nil, e
	}
	var in bus.AgentWrite
	if err := json.Unmarshal(data, &in); err != nil || !bus.ValidToken(in.AgentID) {
		return nil, bus.Errorf(bus.ErrBadRequest, "agent update: name the agent (PUT /v1/agents/{agent_id})")
	}
	if e := reg.fromConfig(in.AgentID); e != nil {
		return nil, e
	}
	body, e := withName(in.Body, in.AgentID)
	if e != nil {
		return nil, e
	}
	for attempt := 0; attempt < 2; attempt++ {
		cur, rev, e := reg.readAgent(ctx, in.AgentID)
		if e != nil {
			return nil, e
		}
		rec, e := reg.checkAgent(body, &cur)
		if e != nil {
			return nil, e
		}
		value, e := reg.sealAgent(rec)
		if e != nil {
			return nil, e
		}
		_, err := reg.o.AgentsKV.Update(ctx, rec.AgentName, value, rev)
		if isConflict(err) {
			continue // written meanwhile: apply to the new one
		} else if err != nil {
			return nil, reg.storeError("update agent", rec.AgentName, err)
		}
		reg.log.Info("registry: agent updated", "agent", rec.AgentName)
		return rec.Redacted(), nil
	}
	return nil, bus.Errorf(bus.ErrConflict, "agent '%s' changed twice while this update was written: try again", in.AgentID)
}

// agentDelete removes an agent made through the API.
func (reg *Registry) agentDelete(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needAgentStore(); e != nil {
		return nil, e
	}
	var in bus.AgentRef
	if err := json.Unmarshal(data, &in); err != nil || in.AgentID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, `agent delete: body must be {"agent_id": "<agent>"}`)
	}
	cur, rev, e := reg.readAgent(ctx, in.AgentID)
	if e != nil {
		return nil, e
	}
	if err := reg.o.AgentsKV.Delete(ctx, in.AgentID, jetstream.LastRevision(rev)); err != nil {
		if isConflict(err) {
			return nil, bus.Errorf(bus.ErrConflict, "agent '%s' changed while it was deleted: try again", in.AgentID)
		}
		return nil, reg.storeError("delete agent", in.AgentID, err)
	}
	reg.log.Info("registry: agent deleted", "agent", in.AgentID)
	return cur.Redacted(), nil
}

// readAgent returns the stored agent (credentials opened) and its revision.
func (reg *Registry) readAgent(ctx context.Context, name string) (bus.AgentRecord, uint64, *bus.Error) {
	if !bus.ValidToken(name) {
		return bus.AgentRecord{}, 0, agentNotFound(name)
	}
	if e := reg.fromConfig(name); e != nil {
		return bus.AgentRecord{}, 0, e
	}
	entry, err := reg.o.AgentsKV.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.AgentRecord{}, 0, agentNotFound(name)
	} else if err != nil {
		return bus.AgentRecord{}, 0, reg.storeError("read agent", name, err)
	}
	rec, err := bus.DecodeAgentRecord(name, entry.Value())
	if err == nil {
		rec, err = reg.o.Secrets.OpenAgent(rec)
	}
	if err != nil {
		reg.log.Error("registry: unreadable agent record", "agent", name, "err", err)
		return bus.AgentRecord{}, 0, bus.Errorf(bus.ErrInternal, "registry: the stored record of agent '%s' is unreadable", name)
	}
	return rec, entry.Revision(), nil
}

// checkAgent reads body by the config file's rules and makes the record,
// as written (references stay references); cur is the agent it replaces.
func (reg *Registry) checkAgent(body json.RawMessage, cur *bus.AgentRecord) (bus.AgentRecord, *bus.Error) {
	var written struct {
		Params struct {
			APIKey  string            `json:"api_key"`
			Headers map[string]string `json:"headers"`
		} `json:"litellm_params"`
	}
	_ = json.Unmarshal(body, &written) // ParseAgentJSON names what is wrong
	if cur != nil {                    // "[redacted]": the stored value (checked as stored)
		if written.Params.APIKey == bus.Redacted {
			written.Params.APIKey = cur.Params.APIKey
		}
		for h, v := range written.Params.Headers {
			if v == bus.Redacted {
				written.Params.Headers[h] = cur.Params.Headers[h]
			}
		}
		body = withParams(body, written.Params.APIKey, written.Params.Headers)
	}
	a, _, err := config.ParseAgentJSON(body, reg.o.Env)
	if err != nil {
		return bus.AgentRecord{}, bus.Errorf(bus.ErrBadRequest, "%s", err.Error())
	}
	if e := reg.fromConfig(a.Name); e != nil {
		return bus.AgentRecord{}, e
	}
	now := time.Now().UTC()
	rec := bus.AgentRecord{AgentID: a.Name, AgentName: a.Name, Card: a.Card, Source: bus.AgentSourceAPI, CreatedAt: now, UpdatedAt: now,
		Params: bus.AgentRecordParams{APIKey: written.Params.APIKey, Headers: written.Params.Headers, MakePublic: a.Public, AccessGroups: a.AccessGroups}}
	if cur != nil {
		rec.CreatedAt = cur.CreatedAt
	}
	return rec, nil
}

// sealAgent is the record's stored value, its literal credentials sealed.
func (reg *Registry) sealAgent(rec bus.AgentRecord) ([]byte, *bus.Error) {
	sealed, err := reg.o.Secrets.SealAgent(rec)
	if err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "%s", err.Error())
	}
	b, _ := json.Marshal(sealed)
	return b, nil
}

// withName is body naming agent: an agent_name it has must be agent.
func withName(body json.RawMessage, agent string) (json.RawMessage, *bus.Error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "the body must be one JSON object: {agent_name, agent_card_params, litellm_params}")
	}
	if raw, ok := m["agent_name"]; ok {
		var name string
		if json.Unmarshal(raw, &name) != nil || name != agent {
			return nil, bus.Errorf(bus.ErrBadRequest, "agent_name: the body renames agent '%s'; an agent's name is its id: create the new one and delete this one", agent)
		}
	}
	m["agent_name"], _ = json.Marshal(agent)
	b, _ := json.Marshal(m)
	return b, nil
}

// withParams is body with litellm_params.api_key and headers replaced.
func withParams(body json.RawMessage, apiKey string, headers map[string]string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return body
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(m["litellm_params"], &p) != nil || p == nil {
		return body
	}
	if apiKey != "" {
		p["api_key"], _ = json.Marshal(apiKey)
	}
	if headers != nil {
		p["headers"], _ = json.Marshal(headers)
	}
	m["litellm_params"], _ = json.Marshal(p)
	b, _ := json.Marshal(m)
	return b
}
