package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The registry REST API (LiteLLM's /v1/mcp/server endpoints, master key only,
// answered by the registry service), server health, discovery
// (/v1/mcp/registry.json) and REST tool access (/v1/mcp/tools, /mcp-rest/...).
//
// Tool listing and calls do not read servers or permissions here: each is a
// JSON-RPC request through the router, with the caller's identity and IP class
// in the envelope, exactly like a POST to /mcp/{server}, so visibility, key
// permissions, allowed_tools/disallowed_tools and tool permissions apply where
// they always do.
const (
	// healthTimeout bounds one server's probe.
	healthTimeout = 3 * time.Second
	// toolsListTimeout bounds listing one server's tools (every page).
	toolsListTimeout = 30 * time.Second
	// maxToolPages bounds how many tools/list pages one server may answer.
	maxToolPages = 20
	// fanOut bounds the servers probed or listed at once for one request.
	fanOut = 8
)

func (g *Ingress) registryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server", g.serveServers)
	mux.HandleFunc("/v1/mcp/server/{id}", g.serveServer)
	mux.HandleFunc("/v1/mcp/server/health", g.serveHealth)
	mux.HandleFunc("/v1/mcp/tools", g.serveToolsV1)
	mux.HandleFunc("/v1/mcp/registry.json", g.serveRegistryJSON)
	mux.HandleFunc("/mcp-rest/tools/list", g.serveRESTToolsList)
	mux.HandleFunc("/mcp-rest/tools/call", g.serveRESTToolsCall)
}

// methodAllowed answers 405 (with Allow) unless r uses one of methods.
func methodAllowed(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	return false
}

// /v1/mcp/server: GET lists, POST creates, PUT updates.
func (g *Ingress) serveServers(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodPost, http.MethodPut) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		g.registryAdmin(w, r, "list", bus.SubjectRegistryList, func() ([]byte, *bus.Error) { return []byte("{}"), nil })
	case http.MethodPost:
		g.registryAdmin(w, r, "create", bus.SubjectRegistryCreate, func() ([]byte, *bus.Error) { return readAdminBody(w, r) })
	case http.MethodPut:
		g.registryAdmin(w, r, "update", bus.SubjectRegistryUpdate, func() ([]byte, *bus.Error) { return readAdminBody(w, r) })
	}
}

// /v1/mcp/server/{id}: GET reads, DELETE deletes (?revision=N: only if
// still at that revision).
func (g *Ingress) serveServer(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	g.serveServerByID(w, r, r.PathValue("id"))
}

func (g *Ingress) serveServerByID(w http.ResponseWriter, r *http.Request, id string) {
	ref := func() ([]byte, *bus.Error) {
		in := bus.ServerRef{Name: id}
		if v := r.URL.Query().Get("revision"); v != "" && r.Method == http.MethodDelete {
			rev, err := strconv.ParseUint(v, 10, 64)
			if err != nil || rev == 0 {
				return nil, bus.Errorf(bus.ErrBadRequest, "query parameter revision: expected a positive whole number")
			}
			in.Revision = &rev
		}
		b, _ := json.Marshal(in)
		return b, nil
	}
	if r.Method == http.MethodDelete {
		g.registryAdmin(w, r, "delete", bus.SubjectRegistryDelete, ref)
		return
	}
	g.registryAdmin(w, r, "get", bus.SubjectRegistryGet, ref)
}

// registryAdmin runs one registry CRUD request: the key must be the master
// key; the body (built after the key check, so refused callers never have
// theirs read) goes to subject and the registry's answer is relayed.
func (g *Ingress) registryAdmin(w http.ResponseWriter, r *http.Request, op, subject string, body func() ([]byte, *bus.Error)) {
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	if !id.Admin {
		g.log.Warn("registry API refused: caller is not the master key", "op", op, "request_id", requestID(r), "caller", id.Name(), "ip_class", class)
		writeRESTError(w, bus.Errorf(bus.ErrForbidden, "only the master key may manage MCP servers"))
		return
	}
	data, e := body()
	if e != nil {
		writeRESTError(w, e)
		return
	}
	env := bus.Envelope{RequestID: requestID(r), Caller: id, IPClass: class}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data, Header: env.Header()})
	if err != nil {
		e := bus.RequestError("registry service", err)
		g.log.Warn("registry request failed", "op", op, "request_id", env.RequestID, "err", e.Message)
		writeRESTError(w, e)
		return
	}
	if e := bus.ReplyError(reply); e != nil {
		g.log.Info("registry request refused", "op", op, "request_id", env.RequestID, "code", e.Kind.Code)
		writeRESTError(w, e)
		return
	}
	g.log.Info("registry request", "op", op, "request_id", env.RequestID, "caller", id.Name())
	writeJSON(w, http.StatusOK, reply.Data)
}

// servers returns every server (redacted is enough: names, visibility,
// descriptions), from the ingress's cache or else from the registry.
func (g *Ingress) servers(ctx context.Context) ([]bus.ServerSpec, *bus.Error) {
	if g.o.Servers != nil {
		return g.o.Servers.List(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestWithContext(ctx, bus.SubjectRegistryList, []byte("{}"))
	if err != nil {
		return nil, bus.RequestError("registry service", err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	var out []bus.ServerSpec
	if err := json.Unmarshal(reply.Data, &out); err != nil {
		return nil, bus.Errorf(bus.ErrInternal, "registry service sent an unreadable server list")
	}
	return out, nil
}

// usable is what the caller may see and use: visible, then permitted,
// optionally narrowed to the servers named in only.
func (g *Ingress) usable(ctx context.Context, id bus.Identity, class bus.IPClass, only []string) ([]bus.ServerSpec, *bus.Error) {
	all, e := g.servers(ctx)
	if e != nil {
		return nil, e
	}
	var out []bus.ServerSpec
	for _, s := range all {
		if !bus.Visible(s, class) || !id.Permissions.AllowsServer(s.Name) {
			continue
		}
		if len(only) > 0 && !contains(only, s.Name) {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// healthStatus is one server's probe result. It names the server and the
// gateway's error message (catalog messages never hold credentials).
type healthStatus struct {
	ServerID  string  `json:"server_id"`
	Status    string  `json:"status"`
	LatencyMS int64   `json:"latency_ms"`
	LastError *string `json:"last_error"`
}

// GET /v1/mcp/server/health[?server_ids=a,b]: probes, for each server the
// caller may see and use, a worker's info endpoint (the upstream's initialize
// result, from the worker's shared session).
func (g *Ingress) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete { // a server named "health"
		g.serveServerByID(w, r, "health")
		return
	}
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	only := splitList(q.Get("server_ids"))
	only = append(only, splitList(q.Get("server_id"))...)
	servers, e := g.usable(r.Context(), id, class, only)
	if e != nil {
		writeRESTError(w, e)
		return
	}
	out := make([]healthStatus, len(servers))
	reqID := requestID(r) // once: it is set lazily, not safe to first call in parallel
	each(len(servers), func(i int) {
		out[i] = g.probe(r.Context(), reqID+"-"+servers[i].Name, id, class, servers[i].Name)
	})
	body, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, body)
}

func (g *Ingress) probe(ctx context.Context, reqID string, id bus.Identity, class bus.IPClass, server string) healthStatus {
	st := healthStatus{ServerID: server, Status: "healthy"}
	deadline := time.Now().Add(healthTimeout)
	env := bus.Envelope{RequestID: reqID, Caller: id, IPClass: class, Servers: []string{server}, Deadline: deadline}
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(250*time.Millisecond))
	defer cancel()
	start := time.Now()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.ToolInfo(server), Header: env.Header()})
	st.LatencyMS = time.Since(start).Milliseconds()
	var msg string
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		msg = "no tool worker is running for server \"" + server + "\""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		msg = "server \"" + server + "\" did not answer within " + healthTimeout.String()
	case err != nil:
		msg = "probe failed: " + bus.RequestError("tool worker", err).Message
	default:
		if e := bus.ReplyError(reply); e != nil {
			msg = e.Message
		}
	}
	if msg != "" {
		st.Status = "unhealthy"
		st.LastError = &msg
	}
	return st
}

// each runs fn(0..n-1), at most fanOut at a time, and waits for all.
func each(n int, fn func(i int)) {
	sem := make(chan struct{}, fanOut)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

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
// server_id and mcp_info.server_name (LiteLLM's field).
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
	var names []string
	strict := false
	if one := strings.TrimSpace(q.Get("server_id")); one != "" {
		// Named: the router decides (unknown or hidden: 404, not permitted: 403).
		names, strict = []string{one}, true
	} else {
		servers, e := g.usable(r.Context(), id, class, nil)
		if e != nil {
			writeRESTError(w, e)
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
		result, e := g.routeREST(ctx, r, reqID, id, class, server, page, "tools/list", params)
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeRESTError(w, bus.Errorf(bus.ErrTooLarge, "request body larger than %d bytes", g.o.MaxBodyBytes))
			return
		}
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "reading the request body failed"))
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
	switch {
	case server == "":
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "server_id is required: the server the tool belongs to (GET /mcp-rest/tools/list shows each tool's server_id)"))
		return
	case in.Name == "":
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "name is required: the tool's name on server %q", server))
		return
	}
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
	result, e := g.routeREST(r.Context(), r, requestID(r), id, class, server, 1, "tools/call", params)
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
	req := &request{msg: msg, body: body, env: bus.Envelope{
		RequestID: reqID,
		Caller:    id,
		IPClass:   class,
		Servers:   []string{server},
		Forward:   g.forwardHeaders(r, callerKey(r)),
	}}
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

// restRouteError is a routed request's error as the REST surface gives it:
// a permission denial is a 403 FORBIDDEN there (on the MCP surface it is a
// JSON-RPC NOT_PERMITTED error inside a 200).
func restRouteError(e *bus.Error) *bus.Error {
	if e.Kind == bus.ErrNotPermitted {
		return &bus.Error{Kind: bus.ErrForbidden, Message: e.Message}
	}
	return e
}

// The MCP registry document (GET /v1/mcp/registry.json), as LiteLLM serves it.
type registryDoc struct {
	Servers []registryEntry `json:"servers"`
}

type registryEntry struct {
	Server registryServer `json:"server"`
}

type registryServer struct {
	Name        string           `json:"name"`
	Title       string           `json:"title"`
	Description string           `json:"description"`
	Version     string           `json:"version"`
	Remotes     []registryRemote `json:"remotes"`
}

type registryRemote struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// GET /v1/mcp/registry.json: 404 unless enable_mcp_registry. Public like
// LiteLLM's (no key), so it lists only what the caller's IP class may see:
// the gateway itself, then each visible server. Key permissions are not
// applied (there is no key); using a server still needs one.
func (g *Ingress) serveRegistryJSON(w http.ResponseWriter, r *http.Request) {
	if !g.o.EnableMCPRegistry {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "the MCP registry is not enabled (general_settings.enable_mcp_registry)"))
		return
	}
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	class := g.ipClass(r)
	servers, e := g.servers(r.Context())
	if e != nil {
		writeRESTError(w, e)
		return
	}
	base := g.baseURL(r)
	version := g.o.Version
	if version == "" {
		version = "0.1.0"
	}
	doc := registryDoc{Servers: []registryEntry{{registryServer{
		Name:        "mcpbus",
		Title:       "mcpbus",
		Description: "MCP gateway: the servers listed after this one, behind one endpoint",
		Version:     version,
		Remotes:     []registryRemote{{Type: "streamable-http", URL: base + "/mcp"}},
	}}}}
	sorted := append([]bus.ServerSpec(nil), servers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, s := range sorted {
		if !bus.Visible(s, class) {
			continue
		}
		title := s.Alias
		if title == "" {
			title = s.Name
		}
		desc := s.Description
		if desc == "" {
			desc = "MCP server " + s.Name + " through mcpbus"
		}
		doc.Servers = append(doc.Servers, registryEntry{registryServer{
			Name:        s.Name,
			Title:       title,
			Description: desc,
			Version:     version,
			Remotes:     []registryRemote{{Type: "streamable-http", URL: base + "/mcp/" + url.PathEscape(s.Name)}},
		}})
	}
	body, _ := json.Marshal(doc)
	writeJSON(w, http.StatusOK, body)
}

// baseURL is the gateway's URL as the client reached it: scheme and Host of
// the request, or X-Forwarded-Proto / X-Forwarded-Host when the direct peer is
// a trusted proxy (use_x_forwarded_for and mcp_trusted_proxy_ranges, the same
// trust as X-Forwarded-For). A host that is not a plain host[:port] is not
// used.
func (g *Ingress) baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if g.fromTrustedProxy(r) {
		if p := strings.ToLower(g.forwardedEntry(r, "X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := g.forwardedEntry(r, "X-Forwarded-Host"); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host
}

func (g *Ingress) fromTrustedProxy(r *http.Request) bool {
	peer, ok := parsePeer(r.RemoteAddr)
	return ok && g.xff.enabled && inAny(g.xff.trusted, peer)
}

// forwardedEntry reads a forwarded header the way X-Forwarded-For is read:
// the entry mcp_xff_num_trusted_hops places from the right, written by the
// outermost trusted proxy. A list shorter than that was set (not appended) by
// a proxy: its first entry.
func (g *Ingress) forwardedEntry(r *http.Request, name string) string {
	var entries []string
	for _, line := range r.Header.Values(name) {
		for _, e := range strings.Split(line, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	if len(entries) == 0 {
		return ""
	}
	hops := max(g.xff.hops, 1)
	if len(entries) >= hops {
		return entries[len(entries)-hops]
	}
	return entries[0]
}

// validHost accepts host or host:port made of host name, IPv4 or bracketed
// IPv6 characters only.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.Hostname() != ""
}
