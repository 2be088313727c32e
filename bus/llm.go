package bus

import (
	"net/http"
	"slices"
	"strings"
)

// The LLM half of the bus (plan: docs/plans/llm-a2a.md). The ingress sends
// an OpenAI-shaped request (/v1/models, /v1/chat/completions) with the
// caller's envelope to the LLM router (SubjectLLMRouterAll); the router picks
// a deployment of the model group the request names and sends it on to that
// deployment's workers (LLMDeploymentRPC, one queue group per deployment),
// which hold the provider key and speak the provider's wire.
//
// Streaming: a request with "stream": true carries Envelope.Stream; the
// worker publishes each chunk, the JSON of one OpenAI chat.completion.chunk,
// to ClientSubject(Envelope.Stream, LLMSender), in order, and answers with
// HeaderLLMStreamed set once it sent the first. The router answers the
// ingress only after the worker's answer, so every chunk is on the wire
// before the answer that ends the stream.
const (
	// SubjectLLMModels answers GET /v1/models: the model groups the caller
	// may use, as OpenAI's list ({"object":"list","data":[...]}).
	SubjectLLMModels = Root + ".llm.router.models"
	// SubjectLLMChat takes a chat completions request body,
	// SubjectLLMEmbeddings an embeddings one, SubjectLLMResponses a
	// Responses API one (which the router answers with chat completions
	// of the model's deployments, running MCP tools on the bus).
	SubjectLLMChat       = Root + ".llm.router.chat"
	SubjectLLMEmbeddings = Root + ".llm.router.embeddings"
	SubjectLLMResponses  = Root + ".llm.router.responses"
	// SubjectLLMRouterAll matches the router's subjects.
	SubjectLLMRouterAll = Root + ".llm.router.*"
	// ServiceLLMRouter and ServiceLLMWorker name the micro services.
	ServiceLLMRouter = "mcpbus-llm-router"
	ServiceLLMWorker = "mcpbus-llm-worker"
	// LLMSender is the sender token of a chunk (ClientSubject).
	LLMSender = "llm"

	// HeaderLLMOp tells a deployment's worker what the body is (LLMOpChat).
	HeaderLLMOp = "Mcpbus-Llm-Op"
	// HeaderLLMModel is the model group a request is for (router to worker).
	HeaderLLMModel = "Mcpbus-Llm-Model"
	// HeaderLLMDeployment names the deployment that answered.
	HeaderLLMDeployment = "Mcpbus-Llm-Deployment"
	// HeaderLLMStreamed, on an answer, says chunks went to the stream: the
	// request must not be tried again elsewhere.
	HeaderLLMStreamed = "Mcpbus-Llm-Streamed"
	// HeaderLLMBase is the gateway's URL as the client reached it
	// (scheme://host), which an MCP tool's server_url on /v1/responses must
	// name (ingress to router).
	HeaderLLMBase = "Mcpbus-Llm-Base"
	// HeaderLLMStatus, on an error answer from a worker, is the provider's
	// HTTP status (for cooldowns and fallbacks; never shown as is).
	HeaderLLMStatus = "Mcpbus-Llm-Status"

	LLMOpChat       = "chat"
	LLMOpEmbeddings = "embeddings"
)

// LLMDeploymentRPC is the subject of one deployment's workers (a deployment
// id is a ValidToken: config checks model_info.id).
func LLMDeploymentRPC(deployment string) string {
	return Root + ".llm.deployment." + deployment + ".rpc"
}

// LLMDeploymentAll matches every deployment's subject.
var LLMDeploymentAll = LLMDeploymentRPC("*")

// LLMQueueGroup is the queue group of one deployment's workers: every
// replica serving it shares the load.
func LLMQueueGroup(deployment string) string { return "llm-" + deployment }

// The LLM errors. Their REST statuses are those OpenAI's SDKs and LiteLLM's
// clients act on (OpenAIError gives the body).
var (
	ErrModelNotFound   = Kind{"MCPBUS_MODEL_NOT_FOUND", -32034, http.StatusNotFound, http.StatusNotFound}
	ErrModelNotAllowed = Kind{"MCPBUS_MODEL_NOT_ALLOWED", -32035, http.StatusForbidden, http.StatusForbidden}
	// ErrProvider: the provider failed (5xx, unreachable, a malformed
	// answer); ErrContextLength: the prompt is over the model's window.
	ErrProvider      = Kind{"MCPBUS_PROVIDER_ERROR", -32036, http.StatusBadGateway, http.StatusBadGateway}
	ErrContextLength = Kind{"MCPBUS_CONTEXT_LENGTH", -32037, http.StatusBadRequest, http.StatusBadRequest}
	// ErrProviderRejected: the provider refused the request itself (its
	// 400 or 422); the message is the provider's, with credentials removed.
	ErrProviderRejected = Kind{"MCPBUS_PROVIDER_REJECTED", -32038, http.StatusBadRequest, http.StatusBadRequest}
	// ErrContentPolicy: the provider's content policy refused the request.
	ErrContentPolicy = Kind{"MCPBUS_CONTENT_POLICY", -32039, http.StatusBadRequest, http.StatusBadRequest}
)

// ModelGroup is what the model permission rule needs of a model group: its
// public name, the access groups of its deployments (model_info) and each
// deployment's "provider/model".
type ModelGroup struct {
	Name         string
	AccessGroups []string
	Targets      []string
}

// Model permission names with a meaning of their own (LiteLLM's).
const (
	AllProxyModels = "all-proxy-models"
	AllTeamModels  = "all-team-models"
)

// AllowsModel reports whether the caller may use model group m: every level
// of Models admits it (LevelAdmits).
func (p Permissions) AllowsModel(m ModelGroup) bool {
	if p.AllModels {
		return true
	}
	if len(p.Models) == 0 {
		return false // fail closed: a decoded nothing is no model
	}
	for _, level := range p.Models {
		if !LevelAdmits(level, m) {
			return false
		}
	}
	return true
}

// LevelAdmits is LiteLLM's rule for one level's models list: the group's
// name, "all-proxy-models", one of its access groups, or a wildcard ending
// in "*" ("openai/*", "gpt-4o*") that matches the name or, for every
// deployment of the group, its "provider/model".
func LevelAdmits(level []string, m ModelGroup) bool {
	for _, pat := range level {
		switch {
		case pat == m.Name || pat == AllProxyModels:
			return true
		case slices.Contains(m.AccessGroups, pat):
			return true
		case strings.HasSuffix(pat, "*"):
			prefix := strings.TrimSuffix(pat, "*")
			if strings.HasPrefix(m.Name, prefix) {
				return true
			}
			all := len(m.Targets) > 0
			for _, t := range m.Targets {
				all = all && strings.HasPrefix(t, prefix)
			}
			if all {
				return true
			}
		}
	}
	return false
}

// OpenAIErrorType is the error.type an OpenAI-shaped error body carries
// for e: LiteLLM's names where it has its own, OpenAI's otherwise.
func OpenAIErrorType(e *Error) string {
	switch e.Kind {
	case ErrModelNotAllowed:
		return "key_model_access_denied"
	case ErrUnauthorized, ErrKeyRevoked:
		return "auth_error"
	case ErrRateLimited:
		return "rate_limit_error"
	case ErrBudgetExceeded:
		return "budget_exceeded"
	case ErrModelNotFound, ErrBadRequest, ErrInvalidParams, ErrContextLength, ErrProviderRejected, ErrContentPolicy, ErrTooLarge, ErrParse:
		return "invalid_request_error"
	case ErrForbidden, ErrNotPermitted:
		return "permission_error"
	}
	if e.Kind.REST >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
