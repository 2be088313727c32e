package config

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// agents, LiteLLM's A2A agent list (agent_list before LiteLLM 1.95), as
// typed values the agent workers serve (docs/AGENTS.md). Each entry names
// the agent and its card; the card's url is where the agent is called (the
// card a client gets names the gateway).

// Agent is one A2A agent.
type Agent struct {
	// Name is agent_name: the /a2a/{agent} path segment.
	Name string
	// URL is the agent's invocation URL (agent_card_params.url, or the
	// first supportedInterfaces url); ProtocolVersion pins the wire ("0.3",
	// "1.0"; "": the request decides).
	URL, ProtocolVersion string
	// Card is agent_card_params, as JSON.
	Card json.RawMessage
	// APIKey (resolved) and Headers are sent to the agent.
	APIKey  string
	Headers map[string]string
	// Public is litellm_params.make_public: external callers may use it.
	Public bool
	// AccessGroups are litellm_params.access_groups (mcpbus's): a key or
	// team granted one of them in object_permission.agent_access_groups
	// may use the agent.
	AccessGroups []string

	unserved bool // its key's variable is not set (a warning said so)
}

var (
	agentKeys             = []string{"agent_name", "agent_card_params", "litellm_params"}
	agentParamKeys        = []string{"api_key", "headers", "make_public", "access_groups"}
	litellmAgentParamKeys = []string{"agent_card_path", "model", "require_trace_id_on_calls_to_agent", "guardrails", "custom_llm_provider"}
)

// readAgents reads the agent list under key (agents or agent_list).
func readAgents(p *problems, key string, n *yaml.Node, env LookupEnv) []Agent {
	if isNull(n) {
		return nil
	}
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf(key, "must be a list of agents (agent_name, agent_card_params, litellm_params)")
		return nil
	}
	var out []Agent
	seen := map[string]string{}
	for i, item := range dn.Content {
		at := key + "[" + strconv.Itoa(i) + "]"
		a, ok := readAgent(p, at, item, env)
		if !ok {
			continue
		}
		if prev, dup := seen[a.Name]; dup {
			p.errorf(at+".agent_name", strconv.Quote(a.Name)+" is already the name of "+prev)
			continue
		}
		seen[a.Name] = at
		out = append(out, a)
	}
	return out
}

func readAgent(p *problems, at string, n *yaml.Node, env LookupEnv) (Agent, bool) {
	if !isMapping(n) {
		p.errorf(at, "must be a mapping with agent_name and agent_card_params")
		return Agent{}, false
	}
	errs := len(p.errs)
	var a Agent
	var card, params *yaml.Node
	var unused []string
	for _, kv := range pairs(n) {
		switch kv.key {
		case "agent_name":
			a.Name, _ = p.str(at+".agent_name", kv.val)
		case "agent_card_params":
			card = kv.val
		case "litellm_params":
			params = kv.val
		default:
			unused = append(unused, kv.key)
		}
	}
	reportUnknown(p, at, "", unused, agentKeys, nil)
	if !serverNameRE.MatchString(a.Name) {
		p.errorf(at+".agent_name", "is required and "+serverNameRule)
	}
	a.readCard(p, at+".agent_card_params", card)
	a.readParams(p, at+".litellm_params", params, env)
	return a, len(p.errs) == errs && !a.unserved
}

// readCard keeps the card as JSON and reads where the agent is called.
func (a *Agent) readCard(p *problems, at string, n *yaml.Node) {
	if !isMapping(n) {
		p.errorf(at, "is required: the agent's card (name, url, protocolVersion, ...)")
		return
	}
	var v any
	if err := n.Decode(&v); err != nil {
		p.errorf(at, "must be a mapping of card fields")
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		p.errorf(at, "must be a mapping of card fields with string keys")
		return
	}
	a.Card = raw
	var c struct {
		URL             string `json:"url"`
		ProtocolVersion string `json:"protocolVersion"`
		Interfaces      []struct {
			URL string `json:"url"`
		} `json:"supportedInterfaces"`
	}
	_ = json.Unmarshal(raw, &c)
	a.URL, a.ProtocolVersion = c.URL, c.ProtocolVersion
	if a.URL == "" && len(c.Interfaces) > 0 {
		a.URL = c.Interfaces[0].URL
	}
	if !isHTTPURL(a.URL) {
		p.errorf(at+".url", "is required: the agent's http(s) URL (or supportedInterfaces[0].url)")
	}
	switch a.ProtocolVersion {
	case "", "0.3", "1.0":
	default:
		p.errorf(at+".protocolVersion", `must be "0.3" or "1.0" (or absent: the request decides)`)
	}
}

func (a *Agent) readParams(p *problems, at string, n *yaml.Node, env LookupEnv) {
	if isNull(n) {
		return
	}
	if !isMapping(n) {
		p.errorf(at, "must be a mapping (api_key, headers, make_public, access_groups)")
		return
	}
	var unused []string
	for _, kv := range pairs(n) {
		path := at + "." + kv.key
		switch kv.key {
		case "api_key":
			s, _ := p.str(path, kv.val)
			v, ferr := resolve(path, s, env)
			if ferr != nil { // as for a deployment: the rest of the file still loads
				p.warn(ferr.Path, "agent "+strconv.Quote(a.Name)+": "+ferr.Msg+"; not served")
				a.unserved = true
			}
			a.APIKey = v
		case "headers":
			a.Headers = p.strMap(path, kv.val)
			for _, name := range slices.Sorted(maps.Keys(a.Headers)) {
				at := path + "[" + name + "]"
				v, ferr := resolve(at, a.Headers[name], env) // os.environ/NAME too
				switch {
				case !validHeaderName(name):
					p.errorf(at, "must be an HTTP header name")
				case ferr != nil:
					p.warn(ferr.Path, "agent "+strconv.Quote(a.Name)+": "+ferr.Msg+"; not served")
					a.unserved = true
				case !validHeaderValue(v):
					p.errorf(at, "must not contain line breaks or other control characters")
				}
				a.Headers[name] = v
			}
		case "access_groups":
			for i, g := range p.strList(path, kv.val) {
				if !serverNameRE.MatchString(g) {
					p.errorf(path+"["+strconv.Itoa(i)+"]", "an access group name "+serverNameRule)
					continue
				}
				a.AccessGroups = append(a.AccessGroups, g)
			}
		case "make_public":
			a.Public = p.boolean(path, kv.val, env)
		default:
			unused = append(unused, kv.key)
		}
	}
	reportUnknown(p, at, "", unused, agentParamKeys, litellmAgentParamKeys)
}

// ParseAgentJSON reads one agent as the agent admin API's body has it
// (LiteLLM's {agent_name, agent_card_params, litellm_params}) by the rules
// of the file's agents, resolving os.environ/ references in env. An agent
// that would not be served (its api_key's variable unset) is an error
// here; warnings name what is ignored.
func ParseAgentJSON(body []byte, env LookupEnv) (Agent, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil || len(doc.Content) == 0 {
		return Agent{}, nil, Errors{{Msg: "the body must be one JSON object: {agent_name, agent_card_params, litellm_params}"}}
	}
	p := &problems{}
	a, ok := readAgent(p, "", doc.Content[0], env)
	if !ok && len(p.errs) == 0 {
		for _, w := range p.warnings { // the warning that left it out
			if strings.HasSuffix(w, "; not served") {
				p.errorf("", strings.TrimPrefix(strings.TrimSuffix(w, "; not served"), ".")+" (in this process's environment)")
			}
		}
	}
	if len(p.errs) > 0 {
		for i := range p.errs {
			p.errs[i].Path = strings.TrimPrefix(p.errs[i].Path, ".")
		}
		return Agent{}, nil, p.errs
	}
	for i, w := range p.warnings {
		p.warnings[i] = strings.TrimPrefix(w, ".")
	}
	return a, p.warnings, nil
}
