package registry_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/registry"
)

const agentSecret = "agent-literal-secret-0123456789"

func agentBody(name, key string) map[string]any {
	return map[string]any{"body": map[string]any{"agent_name": name,
		"agent_card_params": map[string]any{"name": "Helper", "url": "http://127.0.0.1:9/", "protocolVersion": "1.0"},
		"litellm_params":    map[string]any{"api_key": key, "headers": map[string]string{"X-Team": "os.environ/SET_VAR"}, "make_public": true}}}
}

// An agent written through the API is checked by the config file's rules,
// stored with its literal credential sealed (a reference stays one),
// answered redacted, changed by a PUT that may send "[redacted]" back, and
// deleted; an agent of the config file cannot be written.
func TestAgentWrites(t *testing.T) {
	r := startRegistry(t, registry.Options{ConfigAgents: []string{"from-file"}})
	ctx := context.Background()

	out := r.mustCall(bus.SubjectAgentCreate, agentBody("helper", agentSecret))
	params, _ := out["litellm_params"].(map[string]any)
	if out["agent_id"] != "helper" || params["api_key"] != bus.Redacted || out["source"] != "api" {
		t.Fatalf("create answered %v", out)
	}
	entry, err := r.agents.Get(ctx, "helper")
	if err != nil {
		t.Fatal(err)
	}
	stored := string(entry.Value())
	if strings.Contains(stored, agentSecret) || !strings.Contains(stored, bus.SealedPrefix) || !strings.Contains(stored, "os.environ/SET_VAR") {
		t.Fatalf("stored record: %s", stored)
	}
	rec, err := bus.DecodeAgentRecord("helper", entry.Value())
	if err != nil {
		t.Fatal(err)
	}
	if rec, err = testKey.OpenAgent(rec); err != nil || rec.Params.APIKey != agentSecret {
		t.Fatalf("opened %+v: %v", rec.Params, err)
	}

	_, e := r.call(bus.SubjectAgentCreate, agentBody("helper", agentSecret))
	wantErr(t, e, bus.ErrConflict, "already exists")
	_, e = r.call(bus.SubjectAgentCreate, agentBody("from-file", "x"))
	wantErr(t, e, bus.ErrConflict, "config file")
	_, e = r.call(bus.SubjectAgentCreate, agentBody("unset", "os.environ/NOT_SET"))
	wantErr(t, e, bus.ErrBadRequest, "NOT_SET is not set")
	bad := agentBody("bad", "k")
	bad["body"].(map[string]any)["agent_card_params"] = map[string]any{"url": "ftp://x"}
	_, e = r.call(bus.SubjectAgentCreate, bad)
	wantErr(t, e, bus.ErrBadRequest, "agent_card_params.url")

	// PUT: "[redacted]" keeps the stored key; the card changes.
	upd := agentBody("helper", bus.Redacted)
	upd["agent_id"] = "helper"
	upd["body"].(map[string]any)["agent_card_params"] = map[string]any{"name": "Helper 2", "url": "http://127.0.0.1:10/"}
	r.mustCall(bus.SubjectAgentUpdate, upd)
	entry, _ = r.agents.Get(ctx, "helper")
	rec, _ = bus.DecodeAgentRecord("helper", entry.Value())
	rec, _ = testKey.OpenAgent(rec)
	var card map[string]any
	_ = json.Unmarshal(rec.Card, &card)
	if rec.Params.APIKey != agentSecret || card["name"] != "Helper 2" {
		t.Fatalf("after the update: key kept %v, card %v", rec.Params.APIKey == agentSecret, card)
	}
	upd["body"].(map[string]any)["agent_name"] = "renamed"
	_, e = r.call(bus.SubjectAgentUpdate, upd)
	wantErr(t, e, bus.ErrBadRequest, "renames")
	_, e = r.call(bus.SubjectAgentUpdate, map[string]any{"agent_id": "nosuch", "body": agentBody("nosuch", "k")["body"]})
	wantErr(t, e, bus.ErrNotFound, "does not exist")

	r.mustCall(bus.SubjectAgentDelete, bus.AgentRef{AgentID: "helper"})
	if _, err := r.agents.Get(ctx, "helper"); err == nil {
		t.Fatal("the agent is still stored")
	}
	_, e = r.call(bus.SubjectAgentDelete, bus.AgentRef{AgentID: "from-file"})
	wantErr(t, e, bus.ErrConflict, "config file")
}
