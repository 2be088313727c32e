package bus

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
)

// The A2A half of the bus (docs/AGENTS.md). The ingress sends an A2A
// JSON-RPC request for /a2a/{agent} with the caller's envelope to the
// agent's workers (AgentRPC, one queue group per agent), which hold the
// agent's credentials, check that the caller may see and use the agent,
// speak the agent's wire (A2A 0.3 or 1.0) and answer in the caller's.
//
// Streaming: a message/stream (SendStreamingMessage) request carries
// Envelope.Stream; the worker publishes each event, one whole JSON-RPC
// response in the caller's wire, to ClientSubject(Envelope.Stream,
// A2ASender), in order, as the agent sends it, and answers with an empty
// body and HeaderA2AStreamed once the stream is over.
const (
	// ServiceAgentWorker names the agent workers' micro service.
	ServiceAgentWorker = "mcpbus-agent-worker"
	// SubjectAgentList answers the agents the caller may see and use
	// (an AgentList), for GET /v1/agents and the gateway's own card.
	SubjectAgentList = Root + ".agents.list"
	// A2ASender is the sender token of a stream event (ClientSubject);
	// server names cannot take it (they start with a letter or digit).
	A2ASender = "_a2a"
	// AgentListQueue is the queue group of SubjectAgentList.
	AgentListQueue = "agents"

	// HeaderA2AVersion is the wire the caller speaks, as the ingress
	// decided it (A2AClientWire): A2AV03 or A2AV10.
	HeaderA2AVersion = "Mcpbus-A2a-Version"
	// HeaderA2AStreamed, on an answer, says events went to the stream.
	HeaderA2AStreamed = "Mcpbus-A2a-Streamed"
	// HeaderA2AAgent names the agent that answered.
	HeaderA2AAgent = "Mcpbus-A2a-Agent"

	// The two A2A wires.
	A2AV03 = "0.3"
	A2AV10 = "1.0"
)

// AgentRPC is the subject of one agent's JSON-RPC requests (an agent name
// is a ValidToken: config checks agent_name, the ingress checks the path).
func AgentRPC(agent string) string { return Root + ".agent." + agent + ".rpc" }

// AgentCard is the subject that answers one agent's card (AgentCardAnswer).
func AgentCard(agent string) string { return Root + ".agent." + agent + ".card" }

// AgentRPCAll and AgentCardAll match every agent's subjects.
var (
	AgentRPCAll  = AgentRPC("*")
	AgentCardAll = AgentCard("*")
)

// AgentQueueGroup is the queue group of one agent's workers: every replica
// holding the agent's credentials shares its load.
func AgentQueueGroup(agent string) string { return "agent-" + agent }

// The A2A errors. The /a2a routes answer with the REST status.
var (
	// ErrAgentNotFound: no served agent has that name, or the caller may
	// not see it (an internal-only agent and an external caller): the same
	// answer, so a hidden agent is indistinguishable from a missing one.
	ErrAgentNotFound = Kind{"MCPBUS_AGENT_NOT_FOUND", -32041, http.StatusNotFound, http.StatusNotFound}
	// ErrAgentNotAllowed: the key's (or its team's) agents permission does
	// not admit the agent.
	ErrAgentNotAllowed = Kind{"MCPBUS_AGENT_NOT_ALLOWED", -32042, http.StatusForbidden, http.StatusForbidden}
)

// UnknownAgent is the one answer for an agent that is not served or that
// the caller may not see.
func UnknownAgent(name string) *Error {
	return Errorf(ErrAgentNotFound, "agent %q is not served by this gateway (GET /v1/agents lists the agents your key may use)", Shorten(name, MaxTokenLen))
}

// AgentInfo is what the agents permission rule needs of an agent.
type AgentInfo struct {
	Name         string
	AccessGroups []string
}

// AgentScope is one level's limit on agents (a key's, or its team's
// object_permission.agents and agent_access_groups): the agents it names
// and those in the access groups it names.
type AgentScope struct {
	// Of is whose limit it is ("key", "team" or "org"), for denials.
	Of     string   `json:"of"`
	Agents []string `json:"agents,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Admits reports whether the scope lets a through.
func (c AgentScope) Admits(a AgentInfo) bool {
	if slices.Contains(c.Agents, a.Name) {
		return true
	}
	for _, g := range a.AccessGroups {
		if slices.Contains(c.Groups, g) {
			return true
		}
	}
	return false
}

// AllowsAgent reports whether the caller may use agent a: every level of
// Agents admits it (LiteLLM's rule: no list at either level, every agent;
// one level's list, that list; both, the intersection).
func (p Permissions) AllowsAgent(a AgentInfo) bool {
	return p.AgentDenial(a) == ""
}

// AgentDenial is why the caller may not use agent a ("" if it may): which
// level's list leaves it out.
func (p Permissions) AgentDenial(a AgentInfo) string {
	if p.AllAgents {
		return ""
	}
	if len(p.Agents) == 0 {
		return "the key's permissions could not be read" // fail closed
	}
	for _, level := range p.Agents {
		if !level.Admits(a) {
			return "the " + level.Of + "'s object_permission.agents " + listOf(level.Agents) +
				" and agent_access_groups " + listOf(level.Groups) + " do not include it"
		}
	}
	return ""
}

func listOf(s []string) string { return "[" + strings.Join(s, ", ") + "]" }

// AgentSummary is one agent as SubjectAgentList answers it (an array of
// them), in the shape of LiteLLM's agent records: its name, which is also
// its id, its card (agent_card_params, as configured: the ingress points
// its URLs at the gateway before a caller sees it) and whether external
// callers may use it. Credentials are never in it.
type AgentSummary struct {
	AgentID   string          `json:"agent_id"`
	AgentName string          `json:"agent_name"`
	Card      json.RawMessage `json:"agent_card_params"`
	Params    AgentParams     `json:"litellm_params"`
}

// AgentParams are the litellm_params of an agent a caller may see.
type AgentParams struct {
	MakePublic   bool     `json:"make_public"`
	AccessGroups []string `json:"access_groups,omitempty"`
}

// A2A methods, both wires (a2aproject/A2A: 0.3's slash names, 1.0's
// PascalCase names).
var (
	a2aMethods03 = []string{"message/send", "message/stream", "tasks/get", "tasks/cancel", "tasks/resubscribe",
		"tasks/pushNotificationConfig/set", "tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/list",
		"tasks/pushNotificationConfig/delete", "agent/getAuthenticatedExtendedCard"}
	a2aMethods10 = []string{"SendMessage", "SendStreamingMessage", "GetTask", "CancelTask", "SubscribeToTask",
		"CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs",
		"DeleteTaskPushNotificationConfig", "GetExtendedAgentCard", "ListTasks"}
)

// A2AMethodWire is the wire method belongs to: A2AV03, A2AV10, or "" for
// a method of neither.
func A2AMethodWire(method string) string {
	switch {
	case slices.Contains(a2aMethods03, method):
		return A2AV03
	case slices.Contains(a2aMethods10, method):
		return A2AV10
	}
	return ""
}

// A2AClientWire is the wire a caller speaks: its method's, else 1.0 when
// its A2A-Version header says 1.x, else 0.3 (an absent header means 0.3,
// as the specification says).
func A2AClientWire(method, versionHeader string) string {
	if w := A2AMethodWire(method); w != "" {
		return w
	}
	if v := strings.TrimSpace(versionHeader); v == "1" || strings.HasPrefix(v, "1.") {
		return A2AV10
	}
	return A2AV03
}

// A2AStreaming reports whether method answers with a stream of events.
func A2AStreaming(method string) bool {
	switch method {
	case "message/stream", "SendStreamingMessage", "tasks/resubscribe", "SubscribeToTask":
		return true
	}
	return false
}
