package llmworkers

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpbus/mcpbus/config"
)

// The OpenAI wire, spoken by OpenAI, Azure OpenAI and every
// OpenAI-compatible server (vLLM, llamafile, LM Studio, Ollama's /v1):
// the client's chat completions body goes on as it is, with "model" set
// to the deployment's model; the answer and the stream's chunks come back
// as they are.

// wire is how one provider is spoken to.
type wire interface {
	// chatURL is where a chat completions request goes, embeddingsURL an
	// embeddings one ("": the provider has none).
	chatURL(m config.Model) string
	embeddingsURL(m config.Model) string
	// authorize sets the provider key on an upstream request.
	authorize(h http.Header, m config.Model)
}

// DefaultOpenAIBase and DefaultAzureAPIVersion apply when a deployment
// leaves api_base / api_version unset.
const (
	DefaultOpenAIBase      = "https://api.openai.com/v1"
	DefaultAzureAPIVersion = "2024-10-21"
)

// wireOf is m's wire, nil when mcpbus does not speak it yet.
func wireOf(m config.Model) wire {
	switch m.Provider {
	case "openai", "hosted_vllm", "llamafile", "lm_studio", "openai_like":
		return openaiWire{}
	case "azure":
		return azureWire{}
	case "anthropic":
		return anthropicWire{} // anthropic.go
	}
	return nil
}

type openaiWire struct{}

func (openaiWire) chatURL(m config.Model) string { return openaiBase(m) + "/chat/completions" }

func (openaiWire) embeddingsURL(m config.Model) string { return openaiBase(m) + "/embeddings" }

func openaiBase(m config.Model) string {
	base := m.APIBase
	if base == "" {
		base = DefaultOpenAIBase
	}
	return strings.TrimRight(base, "/")
}

func (openaiWire) authorize(h http.Header, m config.Model) {
	if m.APIKey != "" {
		h.Set("Authorization", "Bearer "+m.APIKey)
	}
}

// azureWire: the deployment is in the path, the version in the query, the
// key in api-key.
type azureWire struct{}

func (azureWire) chatURL(m config.Model) string { return azureURL(m, "chat/completions") }

func (azureWire) embeddingsURL(m config.Model) string { return azureURL(m, "embeddings") }

func azureURL(m config.Model, op string) string {
	v := m.APIVersion
	if v == "" {
		v = DefaultAzureAPIVersion
	}
	return strings.TrimRight(m.APIBase, "/") + "/openai/deployments/" + url.PathEscape(m.Upstream) +
		"/" + op + "?api-version=" + url.QueryEscape(v)
}

func (azureWire) authorize(h http.Header, m config.Model) {
	if m.APIKey != "" {
		h.Set("api-key", m.APIKey)
	}
}
