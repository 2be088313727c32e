package config

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// model_list, as LiteLLM writes it: one entry per deployment, entries that
// share a model_name forming a model group (plan: docs/plans/llm-a2a.md,
// step 1). Parsed here into typed values and checked; nothing serves them
// yet. A deployment mcpbus cannot serve (a provider it does not speak, a key
// whose variable is not set) is a warning and left out, so a LiteLLM config
// still loads for its MCP servers; a malformed entry is an error naming its
// path and field.

// Model is one deployment of a model group.
type Model struct {
	// Name is the model group's public name (model_name).
	Name string
	// ID is model_info.id, or a stable id made from the entry (DeploymentID).
	ID string
	// Provider is the wire: openai, azure, anthropic, or an OpenAI-compatible
	// server (hosted_vllm, llamafile, lm_studio, openai_like); Upstream is the
	// model (or Azure deployment) after the provider prefix.
	Provider, Upstream string
	// APIKey is resolved (never logged); APIBase and APIVersion as given.
	APIKey, APIBase, APIVersion string
	// RPM, TPM: the deployment's capacity; Order: its priority in the group
	// (lowest first, 0 = unset); Weight: its share in a random pick.
	RPM, TPM, Order int
	Weight          float64
	// Timeout bounds one call (0: the default).
	Timeout time.Duration
	// Mode is model_info.mode (chat, embedding, ...; "" = chat).
	Mode string
	// InputCost, OutputCost are USD per token (0: the pricing table's).
	InputCost, OutputCost float64
	// AccessGroups are model_info.access_groups.
	AccessGroups []string
	// Hidden: model_info.discoverable false (callable, not listed).
	Hidden bool
}

// modelProviders are the wires mcpbus speaks, and the environment variable
// LiteLLM reads a key from when api_key is not given ("" = none needed).
var modelProviders = map[string]string{
	"openai": "OPENAI_API_KEY", "azure": "AZURE_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
	"hosted_vllm": "", "llamafile": "", "lm_studio": "", "openai_like": "",
}

// needsBase: providers with no default endpoint.
var needsBase = map[string]bool{"azure": true, "hosted_vllm": true, "llamafile": true, "lm_studio": true, "openai_like": true}

var (
	modelEntryKeys   = []string{"model_name", "litellm_params", "model_info", "rpm", "tpm"}
	modelParamKeys   = []string{"model", "api_key", "api_base", "api_version", "rpm", "tpm", "order", "weight", "timeout", "input_cost_per_token", "output_cost_per_token"}
	litellmModelKeys = []string{"stream_timeout", "max_retries", "num_retries", "max_parallel_requests", "cooldown_time", "max_budget",
		"budget_duration", "tags", "tag_regex", "custom_llm_provider", "organization", "region_name", "drop_params",
		"litellm_credential_name", "use_in_pass_through", "configurable_clientside_auth_params", "mock_response",
		"input_cost_per_second", "output_cost_per_second", "itpm", "otpm", "azure_ad_token", "tenant_id", "client_id", "client_secret"}
	modelInfoKeys   = []string{"id", "mode", "base_model", "input_cost_per_token", "output_cost_per_token", "access_groups", "discoverable"}
	litellmInfoKeys = []string{"max_tokens", "max_input_tokens", "max_output_tokens", "tier", "team_id", "team_public_model_name",
		"blocked", "db_model", "supports_function_calling", "supports_vision", "supports_reasoning", "supports_parallel_function_calling"}
)

// readModels reads model_list.
func readModels(p *problems, n *yaml.Node, env LookupEnv) []Model {
	if isNull(n) {
		return nil
	}
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf("model_list", "must be a list of deployments (model_name, litellm_params, model_info)")
		return nil
	}
	var out []Model
	ids := map[string]string{}
	for i, item := range dn.Content {
		at := "model_list[" + strconv.Itoa(i) + "]"
		m, ok := readModel(p, at, item, env)
		if !ok {
			continue
		}
		if prev, dup := ids[m.ID]; dup {
			p.errorf(at+".model_info.id", "is "+strconv.Quote(m.ID)+", already the id of "+prev)
			continue
		}
		ids[m.ID] = at
		out = append(out, m)
	}
	return out
}

// readModel reads one entry; ok is false when it is left out (an error,
// or a warning saying why).
func readModel(p *problems, at string, n *yaml.Node, env LookupEnv) (Model, bool) {
	if !isMapping(n) {
		p.errorf(at, "must be a mapping with model_name and litellm_params")
		return Model{}, false
	}
	var m Model
	var params, info *yaml.Node
	var unused []string
	errs := len(p.errs)
	for _, kv := range pairs(n) {
		switch kv.key {
		case "model_name":
			m.Name, _ = p.str(at+".model_name", kv.val)
		case "litellm_params":
			params = kv.val
		case "model_info":
			info = kv.val
		case "rpm":
			m.RPM = p.count(at+".rpm", kv.val)
		case "tpm":
			m.TPM = p.count(at+".tpm", kv.val)
		default:
			unused = append(unused, kv.key)
		}
	}
	reportUnknown(p, at, "", unused, modelEntryKeys, nil)
	if strings.TrimSpace(m.Name) == "" || len(m.Name) > 256 || strings.IndexFunc(m.Name, unicode.IsControl) >= 0 {
		p.errorf(at+".model_name", "is required: the model group's public name (at most 256 characters, no control characters)")
	}
	if !isMapping(params) {
		p.errorf(at+".litellm_params", "is required: a mapping with model (provider/name), api_key, api_base, ...")
		return Model{}, false
	}
	key, keySet := m.readParams(p, at+".litellm_params", params)
	m.readInfo(p, at+".model_info", info)
	if len(p.errs) > errs {
		return Model{}, false
	}
	if m.ID == "" {
		m.ID = DeploymentID(m, at)
	}
	envVar := modelProviders[m.Provider]
	if _, known := modelProviders[m.Provider]; !known {
		p.warn(at, "model "+strconv.Quote(m.Name)+": provider "+strconv.Quote(m.Provider)+" is not one mcpbus speaks (openai, azure, anthropic, or an OpenAI-compatible api_base with hosted_vllm, llamafile, lm_studio, openai_like); not served")
		return Model{}, false
	}
	if needsBase[m.Provider] && m.APIBase == "" {
		p.errorf(at+".litellm_params.api_base", "is required for provider "+m.Provider)
		return Model{}, false
	}
	if m.Provider == "azure" && m.APIVersion == "" {
		p.errorf(at+".litellm_params.api_version", "is required for provider azure (the api-version of its deployments URL)")
		return Model{}, false
	}
	if !keySet && envVar != "" {
		key = EnvPrefix + envVar // LiteLLM's default for the provider
	}
	if key != "" {
		v, ferr := resolve(at+".litellm_params.api_key", key, env)
		if ferr != nil {
			p.warn(ferr.Path, "model "+strconv.Quote(m.Name)+": "+ferr.Msg+"; not served")
			return Model{}, false
		}
		m.APIKey = v
	}
	return m, true
}

// readParams reads litellm_params; it returns api_key as written (an
// environment reference is resolved by the caller).
func (m *Model) readParams(p *problems, at string, n *yaml.Node) (key string, keySet bool) {
	var unused []string
	for _, kv := range pairs(n) {
		path := at + "." + kv.key
		switch kv.key {
		case "model":
			s, _ := p.str(path, kv.val)
			provider, upstream, ok := strings.Cut(s, "/")
			if !ok { // LiteLLM infers the provider from well-known names
				provider, upstream = "openai", s
				if strings.HasPrefix(s, "claude") {
					provider = "anthropic"
				}
			}
			if upstream == "" {
				p.errorf(path, "is required: provider/model, e.g. openai/gpt-4o or anthropic/claude-sonnet-4-5")
			}
			m.Provider, m.Upstream = provider, upstream
		case "api_key":
			key, keySet = p.str(path, kv.val)
		case "api_base":
			s, _ := p.str(path, kv.val)
			if s != "" && !isHTTPURL(s) {
				p.errorf(path, "must be an http or https URL")
			}
			m.APIBase = s
		case "api_version":
			m.APIVersion, _ = p.str(path, kv.val)
		case "rpm":
			m.RPM = p.count(path, kv.val)
		case "tpm":
			m.TPM = p.count(path, kv.val)
		case "order":
			m.Order = p.count(path, kv.val)
		case "weight":
			if v, ok := p.cost(path, kv.val); ok {
				m.Weight = v
			}
		case "timeout":
			if v, ok := p.cost(path, kv.val); ok { // seconds, as LiteLLM
				m.Timeout = time.Duration(v * float64(time.Second))
			}
		case "input_cost_per_token":
			m.InputCost, _ = p.cost(path, kv.val)
		case "output_cost_per_token":
			m.OutputCost, _ = p.cost(path, kv.val)
		default:
			unused = append(unused, kv.key)
		}
	}
	if m.Upstream == "" && m.Provider == "" {
		p.errorf(at+".model", "is required: provider/model, e.g. openai/gpt-4o")
	}
	reportUnknown(p, at, "", unused, modelParamKeys, litellmModelKeys)
	return key, keySet
}

// readInfo reads model_info.
func (m *Model) readInfo(p *problems, at string, n *yaml.Node) {
	if isNull(n) {
		return
	}
	if !isMapping(n) {
		p.errorf(at, "must be a mapping (id, mode, input_cost_per_token, ...)")
		return
	}
	var unused []string
	for _, kv := range pairs(n) {
		path := at + "." + kv.key
		switch kv.key {
		case "id":
			s, _ := p.str(path, kv.val)
			if s != "" && !serverNameRE.MatchString(s) {
				p.errorf(path, serverNameRule)
			}
			m.ID = s
		case "mode":
			m.Mode, _ = p.str(path, kv.val)
		case "base_model":
			p.str(path, kv.val)
		case "input_cost_per_token":
			if v, ok := p.cost(path, kv.val); ok && m.InputCost == 0 {
				m.InputCost = v
			}
		case "output_cost_per_token":
			if v, ok := p.cost(path, kv.val); ok && m.OutputCost == 0 {
				m.OutputCost = v
			}
		case "access_groups":
			m.AccessGroups = p.strList(path, kv.val)
		case "discoverable":
			s, ok := p.str(path, kv.val)
			if v, err := strconv.ParseBool(s); ok && err != nil {
				p.errorf(path, "must be true or false")
			} else if ok {
				m.Hidden = !v
			}
		default:
			unused = append(unused, kv.key)
		}
	}
	reportUnknown(p, at, "", unused, modelInfoKeys, litellmInfoKeys)
}

// DeploymentID is the id of a deployment without model_info.id: stable for
// the same entry at the same place, a bus subject token.
func DeploymentID(m Model, at string) string {
	sum := sha256.Sum256([]byte(m.Name + "\x00" + m.Provider + "/" + m.Upstream + "\x00" + m.APIBase + "\x00" + at))
	return "d" + hex.EncodeToString(sum[:6])
}

// isHTTPURL reports whether s is an absolute http(s) URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
