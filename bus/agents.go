package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Agents written through the agent admin API (POST /v1/agents; LiteLLM's
// shape): the registry keeps them in BucketAgents, keyed by agent name, and
// the agent workers follow the bucket, so an agent written there is served
// by every agents process without a restart. Agents of the config file are
// not in it: each agents process serves those from its own file, and the
// API may not write an agent of that name.
const (
	BucketAgents = "mcpbus_agents"

	// The registry's agent subjects (SubjectRegistryAll holds them): create
	// and update take an AgentWrite, delete an AgentRef; each answers the
	// AgentRecord, redacted.
	SubjectAgentCreate = Root + ".registry.agent_create"
	SubjectAgentUpdate = Root + ".registry.agent_update"
	SubjectAgentDelete = Root + ".registry.agent_delete"

	// AgentSourceAPI marks a record the API wrote.
	AgentSourceAPI = "api"
)

// AgentRecordParams are a record's litellm_params, as written. APIKey and the
// header values are credentials: a literal one is sealed in the bucket
// (SealAgent), an os.environ/NAME reference stays a reference, resolved
// by each agents process in its own environment.
type AgentRecordParams struct {
	APIKey       string            `json:"api_key,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	MakePublic   bool              `json:"make_public"`
	AccessGroups []string          `json:"access_groups,omitempty"`
}

// AgentRecord is one agent in BucketAgents.
type AgentRecord struct {
	AgentID   string            `json:"agent_id"`
	AgentName string            `json:"agent_name"`
	Card      json.RawMessage   `json:"agent_card_params"`
	Params    AgentRecordParams `json:"litellm_params"`
	Source    string            `json:"source"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// AgentWrite is the body of SubjectAgentCreate and SubjectAgentUpdate:
// LiteLLM's {agent_name, agent_card_params, litellm_params}, and for an
// update the agent it replaces (the path's agent_id).
type AgentWrite struct {
	AgentID string          `json:"agent_id,omitempty"`
	Body    json.RawMessage `json:"body"`
}

// AgentRef names an agent (SubjectAgentDelete).
type AgentRef struct {
	AgentID string `json:"agent_id"`
}

// AgentsBucket opens (creating if needed) the agents bucket on the file
// store. Only the registry writes it (natsauth.go), so the agent workers
// may read it whole with direct gets (kvfollow.go).
func AgentsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	return EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketAgents,
		Description: "mcpbus A2A agents written through the agent admin API",
		History:     5,
		Storage:     jetstream.FileStorage,
	}, p)
}

// DecodeAgentRecord reads the record stored under key. One that does not
// name its key is refused (DecodeServerRecord says why).
func DecodeAgentRecord(key string, value []byte) (AgentRecord, error) {
	var r AgentRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return AgentRecord{}, fmt.Errorf("unreadable: %w", err)
	}
	if r.AgentName != key || r.AgentID != key {
		return AgentRecord{}, errors.New("it does not name its key: not the registry's")
	}
	return r, nil
}

// Written is the record as LiteLLM's body: what config.ParseAgentJSON reads.
func (r AgentRecord) Written() []byte {
	b, _ := json.Marshal(struct {
		Name   string            `json:"agent_name"`
		Card   json.RawMessage   `json:"agent_card_params"`
		Params AgentRecordParams `json:"litellm_params"`
	}{r.AgentName, r.Card, r.Params})
	return b
}

// Redacted is r as answers show it: every credential value "[redacted]"
// (a reference too: it names where the credential is).
func (r AgentRecord) Redacted() AgentRecord {
	if r.Params.APIKey != "" {
		r.Params.APIKey = Redacted
	}
	if len(r.Params.Headers) > 0 {
		h := make(map[string]string, len(r.Params.Headers))
		for k := range r.Params.Headers {
			h[k] = Redacted
		}
		r.Params.Headers = h
	}
	return r
}

// agentSealScope binds an agent's sealed values to it: a server's sealed
// credential copied into an agent record does not open ("/" is in no name).
func agentSealScope(name string) string { return "a2a/" + name }

// SealAgent returns r with every literal credential sealed. Without a key a
// record with a literal credential is refused, naming its fields.
func (k *SecretKey) SealAgent(r AgentRecord) (AgentRecord, error) {
	var lit []string
	if literal(r.Params.APIKey) {
		lit = append(lit, "litellm_params.api_key")
	}
	for _, h := range slices.Sorted(maps.Keys(r.Params.Headers)) {
		if literal(r.Params.Headers[h]) {
			lit = append(lit, "litellm_params.headers."+h)
		}
	}
	if k == nil {
		if len(lit) > 0 {
			return r, fmt.Errorf("agent %q: %s would be stored in plain text: set %s (the same value on every registry and agents process) or write the values as os.environ/NAME", r.AgentName, strings.Join(lit, ", "), SecretKeyEnv[0])
		}
		return r, nil
	}
	scope := agentSealScope(r.AgentName)
	if literal(r.Params.APIKey) {
		r.Params.APIKey = k.seal(scope, "api_key", r.Params.APIKey)
	}
	r.Params.Headers = maps.Clone(r.Params.Headers)
	for h, v := range r.Params.Headers {
		if literal(v) {
			r.Params.Headers[h] = k.seal(scope, "headers."+h, v)
		}
	}
	return r, nil
}

// OpenAgent returns r with every sealed credential opened.
func (k *SecretKey) OpenAgent(r AgentRecord) (AgentRecord, error) {
	scope := agentSealScope(r.AgentName)
	open := func(field, v string) (string, error) {
		if !IsSealed(v) {
			return v, nil
		}
		if k == nil {
			return "", fmt.Errorf("agent %q: %s is sealed and this process has no key: set %s", r.AgentName, field, SecretKeyEnv[0])
		}
		return k.open(scope, field, v)
	}
	var err error
	if r.Params.APIKey, err = open("api_key", r.Params.APIKey); err != nil {
		return r, err
	}
	r.Params.Headers = maps.Clone(r.Params.Headers)
	for h, v := range r.Params.Headers {
		if r.Params.Headers[h], err = open("headers."+h, v); err != nil {
			return r, err
		}
	}
	return r, nil
}
