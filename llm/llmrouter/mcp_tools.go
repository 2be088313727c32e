package llmrouter

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// MCP tools on /v1/responses (issue 18 §2): a tool {"type": "mcp",
// "server_url": ...} whose server_url is this gateway (its /mcp or
// /mcp/{server} URL, as the client reached it, or LiteLLM's litellm_proxy
// and litellm_proxy/mcp/{server}) is run here: its tools are listed and
// called through the MCP router on the bus, with the caller's envelope, so
// the caller's key, IP class and permissions apply as they do on /mcp. Any
// other server_url is refused: the gateway does not dial URLs a client
// names.

// maxToolPages bounds the tools/list pages one MCP tool's listing follows.
const maxToolPages = 20

// mcpTool is one {"type":"mcp"} tool of a request, resolved.
type mcpTool struct {
	Label    string // server_label
	Server   string // the selected server; "" = every server the key may use (aggregated names)
	Allowed  []string
	approval approvalRule
	tools    []listedTool
}

type listedTool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
	Annotations json.RawMessage `json:"annotations,omitempty"`
}

// approvalRule is require_approval: "never", "always" (also when omitted,
// as OpenAI and LiteLLM), or {"never": {"tool_names": [...]}} (the rest
// need approval) / {"always": {"tool_names": [...]}} (the rest do not).
type approvalRule struct {
	never, always []string
	all           bool // every tool needs approval unless in never
}

func (a approvalRule) needs(tool string) bool {
	switch {
	case slices.Contains(a.never, tool):
		return false
	case slices.Contains(a.always, tool):
		return true
	}
	return a.all
}

// readMCPTool reads one mcp tool of a request; base is the gateway's URL
// as the client reached it (the ingress's HeaderLLMBase).
func readMCPTool(raw json.RawMessage, i int, base string) (*mcpTool, *bus.Error) {
	var t struct {
		ServerLabel     string          `json:"server_label"`
		ServerURL       string          `json:"server_url"`
		ConnectorID     string          `json:"connector_id"`
		AllowedTools    json.RawMessage `json:"allowed_tools"`
		RequireApproval json.RawMessage `json:"require_approval"`
	}
	at := "tools[" + strconv.Itoa(i) + "]"
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "%s: not an mcp tool object", at)
	}
	if t.ConnectorID != "" || t.ServerURL == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "%s.server_url: required, and must be this gateway's MCP URL (%s/mcp or %s/mcp/<server>) or litellm_proxy; connectors are not served", at, base, base)
	}
	server, ok := gatewayServer(t.ServerURL, base)
	if !ok {
		return nil, bus.Errorf(bus.ErrBadRequest, "%s.server_url: %q is not this gateway's MCP URL (%s/mcp or %s/mcp/<server>, or litellm_proxy): mcpbus runs MCP tools of its own servers only and dials no other URL",
			at, bus.Shorten(bus.RedactURL(t.ServerURL), 200), base, base)
	}
	m := &mcpTool{Label: t.ServerLabel, Server: server, approval: approvalRule{all: true}}
	if m.Label == "" {
		m.Label = server
		if m.Label == "" {
			m.Label = "mcpbus"
		}
	}
	if len(t.AllowedTools) > 0 && string(t.AllowedTools) != "null" {
		var names []string
		if json.Unmarshal(t.AllowedTools, &names) != nil {
			var filter struct {
				ToolNames []string `json:"tool_names"`
			}
			if json.Unmarshal(t.AllowedTools, &filter) != nil {
				return nil, bus.Errorf(bus.ErrBadRequest, "%s.allowed_tools: a list of tool names or {\"tool_names\": [...]}", at)
			}
			names = filter.ToolNames
		}
		m.Allowed = names
	}
	var mode string
	switch {
	case len(t.RequireApproval) == 0 || string(t.RequireApproval) == "null":
	case json.Unmarshal(t.RequireApproval, &mode) == nil:
		switch mode {
		case "always":
		case "never":
			m.approval.all = false
		default:
			return nil, bus.Errorf(bus.ErrBadRequest, "%s.require_approval: %q is not always or never", at, bus.Shorten(mode, 32))
		}
	default:
		var rule struct {
			Always *struct {
				ToolNames []string `json:"tool_names"`
			} `json:"always"`
			Never *struct {
				ToolNames []string `json:"tool_names"`
			} `json:"never"`
		}
		if json.Unmarshal(t.RequireApproval, &rule) != nil {
			return nil, bus.Errorf(bus.ErrBadRequest, "%s.require_approval: \"always\", \"never\" or {\"always\"|\"never\": {\"tool_names\": [...]}}", at)
		}
		if rule.Never != nil {
			m.approval.never = rule.Never.ToolNames
		}
		if rule.Always != nil {
			m.approval.always = rule.Always.ToolNames
			m.approval.all = rule.Never != nil // only "always" listed: the rest run
		}
	}
	return m, nil
}

// gatewayServer reads a server_url that names this gateway: the server it
// selects ("" for /mcp, every server), and whether it does.
func gatewayServer(raw, base string) (string, bool) {
	if rest, ok := strings.CutPrefix(raw, "litellm_proxy"); ok {
		if rest == "" || rest == "/mcp" || rest == "/mcp/" {
			return "", true
		}
		s, ok := strings.CutPrefix(rest, "/mcp/")
		return s, ok && bus.ValidToken(s)
	}
	u, err := url.Parse(raw)
	b, berr := url.Parse(base)
	if err != nil || berr != nil || base == "" || u.User != nil || u.RawQuery != "" || !strings.EqualFold(u.Scheme, b.Scheme) || !strings.EqualFold(u.Host, b.Host) {
		return "", false
	}
	switch p := strings.TrimSuffix(u.Path, "/"); {
	case p == "/mcp":
		return "", true
	case strings.HasPrefix(p, "/mcp/"):
		s := strings.TrimPrefix(p, "/mcp/")
		return s, bus.ValidToken(s)
	}
	return "", false
}

// mcpRPC sends one JSON-RPC request to the MCP router with the caller's
// envelope, for server ("" = aggregated), and returns its result.
func (r *Router) mcpRPC(ctx context.Context, env bus.Envelope, server, method string, params any, id int) (json.RawMessage, *bus.Error) {
	p, _ := json.Marshal(params)
	body := []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(id) + `,"method":` + strconv.Quote(method) + `,"params":` + string(p) + `}`)
	env.Servers, env.Stream, env.Session = nil, "", ""
	if server != "" {
		env.Servers = []string{server}
	}
	resp, err := r.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.SubjectRouterRPC, Data: body, Header: env.Header()})
	if err != nil {
		return nil, bus.RequestError("the MCP router", err)
	}
	if e := bus.ReplyError(resp); e != nil {
		return nil, e
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(resp.Data, &res) != nil {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "an unreadable answer to %s", method)
	}
	if res.Error != nil {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "%s: %s (JSON-RPC error %d)", method, res.Error.Message, res.Error.Code)
	}
	return res.Result, nil
}

// list fills t's tools: what the caller may use, less what allowed_tools
// leaves out.
func (r *Router) list(ctx context.Context, env bus.Envelope, t *mcpTool) *bus.Error {
	cursor := ""
	for page := 1; page <= maxToolPages; page++ {
		params := map[string]string{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		result, e := r.mcpRPC(ctx, env, t.Server, bus.MethodToolsList, params, page)
		if e != nil {
			return e
		}
		var res struct {
			Tools []struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				InputSchema json.RawMessage `json:"inputSchema"`
				Annotations json.RawMessage `json:"annotations"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if json.Unmarshal(result, &res) != nil {
			return bus.Errorf(bus.ErrUpstreamProtocol, "an unreadable tools/list answer")
		}
		for _, tool := range res.Tools {
			if len(t.Allowed) > 0 && !slices.Contains(t.Allowed, tool.Name) {
				continue
			}
			schema := tool.InputSchema
			if len(schema) == 0 || string(schema) == "null" {
				schema = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			t.tools = append(t.tools, listedTool{Name: tool.Name, Description: tool.Description, InputSchema: schema, Annotations: tool.Annotations})
		}
		if cursor = res.NextCursor; cursor == "" {
			break
		}
	}
	return nil
}

// callTool runs one tool call; output is the result's text, failed when
// the call failed or the tool answered isError.
func (r *Router) callTool(ctx context.Context, env bus.Envelope, t *mcpTool, name, arguments string, id int) (output string, failed bool) {
	args := json.RawMessage(arguments)
	if strings.TrimSpace(arguments) == "" {
		args = json.RawMessage(`{}`)
	}
	if !json.Valid(args) {
		return "the arguments are not JSON", true
	}
	result, e := r.mcpRPC(ctx, env, t.Server, bus.MethodToolsCall, map[string]any{"name": name, "arguments": args}, id)
	if e != nil {
		return e.Message, true
	}
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent json.RawMessage `json:"structuredContent"`
		IsError           bool            `json:"isError"`
	}
	if json.Unmarshal(result, &res) != nil {
		return "an unreadable tools/call answer", true
	}
	var b strings.Builder
	for _, c := range res.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	if b.Len() == 0 && len(res.StructuredContent) > 0 {
		b.Write(res.StructuredContent)
	}
	return b.String(), res.IsError
}
