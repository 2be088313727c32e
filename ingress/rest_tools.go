package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// REST tool access: GET /v1/mcp/tools, GET /mcp-rest/tools/list and POST
// /mcp-rest/tools/call. Servers are picked by restServers; every tools/list
// and tools/call goes through the router like a POST to /mcp/{server}.
const (
	// toolsListTimeout bounds listing one server's tools (every page).
	toolsListTimeout = 30 * time.Second
	// maxToolPages bounds how many tools/list pages one server may answer.
	maxToolPages = 20
)

// GET /v1/mcp/tools[?server_id=x]: like /mcp-rest/tools/list.
func (g *Ingress) serveToolsV1(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.listTools(w, r)
}

// GET /mcp-rest/tools/list[?server_id=x][&format=openai].
func (g *Ingress) serveRESTToolsList(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.listTools(w, r)
}

// serverError is a server whose tools could not be listed (all-servers
// listing only; with server_id the error is the answer).
type serverError struct {
	ServerID string `json:"server_id"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

// listTools answers the tools of one server (server_id) or of every server
// the caller may see and use. Each tool is the upstream's tool object plus
// server_id and mcp_info.server_name (LiteLLM's field). A server the caller
// may not see or use, named or not, is never an empty list: naming one is its
// error, and a caller that may use none gets restServers' error.
func (g *Ingress) listTools(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "openai" && format != "mcp" {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "query parameter format: expected openai or mcp"))
		return
	}
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	if format == "openai" && strings.TrimSpace(q.Get("server_id")) == "" {
		// Function names must be unique: every server's tools as /mcp names
		// them ({server}__{tool}), which tools/call takes without server_id.
		// A caller who may use no server is told so, as below.
		if _, e := g.restServers(r.Context(), id, class, nil); e != nil {
			writeRESTError(w, restRouteError(e))
			return
		}
		g.listToolsOpenAIAggregated(w, r, id, class)
		return
	}
	var names []string
	strict := false
	if one := strings.TrimSpace(q.Get("server_id")); one != "" {
		// Named: the router decides (unknown or hidden: 404, not permitted: 403).
		names, strict = []string{one}, true
	} else {
		// Every server the caller may see and use; none is an error saying
		// why (restServers), so an empty list means servers without tools.
		servers, e := g.restServers(r.Context(), id, class, nil)
		if e != nil {
			g.log.Info("tools list refused", "request_id", requestID(r), "caller", id.Name(), "ip_class", class, "code", e.Kind.Code)
			writeRESTError(w, restRouteError(e))
			return
		}
		for _, s := range servers {
			names = append(names, s.Name)
		}
	}
	results := make([][]map[string]json.RawMessage, len(names))
	errs := make([]*bus.Error, len(names))
	reqID := requestID(r) // once: it is set lazily, not safe to first call in parallel
	each(len(names), func(i int) {
		results[i], errs[i] = g.serverTools(r, reqID+"-"+names[i], id, class, names[i])
	})
	tools := []map[string]json.RawMessage{}
	var failed []serverError
	for i, name := range names {
		if errs[i] != nil {
			if strict {
				writeRESTError(w, restRouteError(errs[i]))
				return
			}
			g.log.Info("tools list: server left out", "request_id", requestID(r), "server", name, "code", errs[i].Kind.Code)
			failed = append(failed, serverError{name, errs[i].Kind.Code, errs[i].Message})
			continue
		}
		tools = append(tools, results[i]...)
	}
	if format == "openai" {
		if len(failed) > 0 {
			l := make([]string, len(failed))
			for i, f := range failed {
				l[i] = f.ServerID
			}
			w.Header().Set("X-Mcpbus-Unavailable-Servers", strings.Join(l, ","))
		}
		body, _ := json.Marshal(openAITools(tools))
		writeJSON(w, http.StatusOK, body)
		return
	}
	body, _ := json.Marshal(struct {
		Tools  []map[string]json.RawMessage `json:"tools"`
		Errors []serverError                `json:"errors,omitempty"`
	}{tools, failed})
	writeJSON(w, http.StatusOK, body)
}

// listToolsOpenAIAggregated answers ?format=openai without server_id: the
// aggregated list (the router's names, unique), as OpenAI function tools;
// servers that could not be listed are named in X-Mcpbus-Unavailable-Servers.
func (g *Ingress) listToolsOpenAIAggregated(w http.ResponseWriter, r *http.Request, id bus.Identity, class bus.IPClass) {
	ctx, cancel := context.WithTimeout(r.Context(), toolsListTimeout)
	defer cancel()
	var tools []map[string]json.RawMessage
	var missing []string
	cursor := ""
	for page := 1; page <= maxToolPages; page++ {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		result, e := g.routeREST(ctx, r, requestID(r), id, class, "", page, bus.MethodToolsList, params)
		if e != nil {
			writeRESTError(w, restRouteError(e))
			return
		}
		var res struct {
			Tools      []map[string]json.RawMessage `json:"tools"`
			NextCursor string                       `json:"nextCursor"`
			Meta       struct {
				Unavailable []struct {
					Server string `json:"server"`
				} `json:"mcpbus/unavailable"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(result, &res); err != nil {
			writeRESTError(w, bus.Errorf(bus.ErrUpstreamProtocol, "the aggregated tools/list answer is unreadable"))
			return
		}
		tools = append(tools, res.Tools...)
		for _, u := range res.Meta.Unavailable {
			if !slices.Contains(missing, u.Server) {
				missing = append(missing, u.Server)
			}
		}
		if cursor = res.NextCursor; cursor == "" {
			break
		}
	}
	if len(missing) > 0 {
		w.Header().Set("X-Mcpbus-Unavailable-Servers", strings.Join(missing, ","))
	}
	body, _ := json.Marshal(openAITools(tools))
	writeJSON(w, http.StatusOK, body)
}

// serverTools lists one server's tools through the router, following
// nextCursor.
func (g *Ingress) serverTools(r *http.Request, reqID string, id bus.Identity, class bus.IPClass, server string) ([]map[string]json.RawMessage, *bus.Error) {
	ctx, cancel := context.WithTimeout(r.Context(), toolsListTimeout)
	defer cancel()
	serverJSON, _ := json.Marshal(server)
	info, _ := json.Marshal(map[string]string{"server_name": server})
	var out []map[string]json.RawMessage
	cursor := ""
	for page := 1; page <= maxToolPages; page++ {
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		result, e := g.routeREST(ctx, r, reqID, id, class, server, page, bus.MethodToolsList, params)
		if e != nil {
			return nil, e
		}
		var res struct {
			Tools      []map[string]json.RawMessage `json:"tools"`
			NextCursor string                       `json:"nextCursor"`
		}
		if err := json.Unmarshal(result, &res); err != nil {
			return nil, bus.Errorf(bus.ErrUpstreamProtocol, "server %q answered tools/list with an unreadable result", server)
		}
		for _, t := range res.Tools {
			if t == nil {
				continue
			}
			t["server_id"] = serverJSON
			t["mcp_info"] = info
			out = append(out, t)
		}
		if res.NextCursor == "" {
			return out, nil
		}
		cursor = res.NextCursor
	}
	g.log.Warn("tools list: server has more pages than the gateway reads", "request_id", reqID, "server", server, "pages", maxToolPages)
	return out, nil
}

// openAITool is OpenAI's function-tool definition.
type openAITool struct {
	Type     string         `json:"type"`
	Function openAIFunction `json:"function"`
}

type openAIFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

func openAITools(tools []map[string]json.RawMessage) []openAITool {
	out := make([]openAITool, 0, len(tools))
	for _, t := range tools {
		var f openAIFunction
		_ = json.Unmarshal(t["name"], &f.Name)
		_ = json.Unmarshal(t["description"], &f.Description)
		f.Parameters = t["inputSchema"]
		if len(f.Parameters) == 0 || string(f.Parameters) == "null" {
			f.Parameters = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out = append(out, openAITool{Type: "function", Function: f})
	}
	return out
}

// POST /mcp-rest/tools/call {"server_id", "name", "arguments"}: the tool's
// bare name on the server server_id names; the answer is the CallToolResult.
func (g *Ingress) serveRESTToolsCall(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodPost) {
		return
	}
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	body, e := g.readBody(w, r, g.o.MaxBodyBytes)
	if e != nil {
		writeRESTError(w, e)
		return
	}
	var in struct {
		ServerID   string          `json:"server_id"`
		ServerName string          `json:"server_name"`
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, `request body must be a JSON object {"server_id", "name", "arguments"}`))
		return
	}
	server := strings.TrimSpace(in.ServerID)
	if server == "" {
		server = strings.TrimSpace(in.ServerName)
	}
	if in.Name == "" {
		if server == "" {
			writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "name is required: the tool's name on server_id, or without server_id its name as ?format=openai lists it ({server}__{tool})"))
		} else {
			writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "name is required: the tool's name on server %q", server))
		}
		return
	}
	// Without server_id the name is the aggregated one (?format=openai,
	// /mcp): the router finds its server.
	args := in.Arguments
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage(`{}`)
	} else if args[0] != '{' {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "arguments: expected an object"))
		return
	}
	params, _ := json.Marshal(struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}{in.Name, args})
	result, e := g.routeREST(r.Context(), r, requestID(r), id, class, server, 1, bus.MethodToolsCall, params)
	if e != nil && server == "" && e.Kind == bus.ErrInvalidParams {
		e = bus.Errorf(e.Kind, "%s; without server_id, name is a tool's aggregated name as ?format=openai lists it ({server}__{tool}), or give server_id and its bare name", e.Message)
	}
	if e != nil {
		writeRESTError(w, restRouteError(e))
		return
	}
	writeJSON(w, http.StatusOK, result)
}

// routeREST sends one JSON-RPC request for server through the router, as
// a POST to /mcp/{server} would be (ingress.route: the same envelope, the same
// revocation of in-flight calls), and returns its result. A JSON-RPC error
// from the upstream becomes a gateway error.
func (g *Ingress) routeREST(ctx context.Context, r *http.Request, reqID string, id bus.Identity, class bus.IPClass, server string, rpcID int, method string, params json.RawMessage) (json.RawMessage, *bus.Error) {
	body := []byte(`{"jsonrpc":"2.0","id":` + strconv.Itoa(rpcID) + `,"method":` + strconv.Quote(method) + `,"params":` + string(params) + `}`)
	msg, perr := bus.ParseMessage(body)
	if perr != nil {
		return nil, perr
	}
	var servers []string // none: every server the caller may use, aggregated (names prefixed)
	if server != "" {
		servers = []string{server}
	}
	req := &request{msg: msg, body: body, env: bus.Envelope{
		RequestID: reqID,
		Caller:    id,
		IPClass:   class,
		Servers:   servers,
		Forward:   g.forwardHeaders(r, callerKey(r)),
	}}
	if server == "" {
		server = "(aggregated)" // for the messages below
	}
	reply, e := g.route(ctx, req)
	if e != nil {
		return nil, e
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply, &res); err != nil {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "server %q sent an unreadable answer to %s", server, method)
	}
	if res.Error != nil {
		k := bus.ErrUpstreamProtocol
		switch res.Error.Code {
		case -32602, -32601, -32600:
			k = bus.ErrInvalidParams // the request was refused: the caller's to fix
		}
		return nil, bus.Errorf(k, "server %q refused %s: %s (JSON-RPC error %d)", server, method, res.Error.Message, res.Error.Code)
	}
	if len(res.Result) == 0 {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "server %q answered %s without a result", server, method)
	}
	return res.Result, nil
}
