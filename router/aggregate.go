package router

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Aggregation (docs/AGGREGATION.md): when a caller's selection resolves to
// several servers, the router serves them as one MCP server. Lists are fanned
// out and merged (lists.go); calls are routed by exact maps built from the
// lists (namemap.go, resources.go); everything else a single upstream could
// answer is refused with -32601.

func (r *Router) newAgg(env bus.Envelope, h nats.Header, raw []byte, servers []bus.ServerSpec) *agg {
	a := &agg{env: env, h: h, raw: raw, servers: servers, sep: r.o.Separator,
		filters: make([]string, len(servers)), ns: make([]string, len(servers))}
	for i, s := range servers {
		a.filters[i] = filterKey(s, env)
		if !s.Unprefixed {
			a.ns[i] = namespace(s.Prefix(), r.o.Separator)
		} // else "": its names are its own (names.go)
	}
	a.amb = ambiguous(a.ns)
	return a
}

func (r *Router) aggregate(ctx context.Context, h nats.Header, raw []byte, env bus.Envelope, msg *bus.Message, servers []bus.ServerSpec) ([]byte, *bus.Error) {
	a := r.newAgg(env, h, raw, servers)
	switch msg.Method {
	case bus.MethodInitialize:
		return r.initializeAll(ctx, a, msg)
	case bus.MethodServerDiscover:
		return r.discoverAll(ctx, a, msg)
	case bus.MethodToolsList:
		return r.list(ctx, a, msg, kindTools)
	case bus.MethodPromptsList:
		return r.list(ctx, a, msg, kindPrompts)
	case bus.MethodResourcesList:
		return r.list(ctx, a, msg, kindResources)
	case bus.MethodResourcesTemplatesList:
		return r.list(ctx, a, msg, kindTemplates)
	case bus.MethodToolsCall:
		return r.callByName(ctx, a, msg, kindTools)
	case bus.MethodPromptsGet:
		return r.callByName(ctx, a, msg, kindPrompts)
	case bus.MethodResourcesRead, bus.MethodResourcesSubscribe, bus.MethodResourcesUnsubscribe:
		return r.callByURI(ctx, a, msg)
	case bus.MethodCompletionComplete:
		return r.complete(ctx, a, msg)
	case bus.MethodLoggingSetLevel:
		return r.setLevel(ctx, a, msg)
	}
	return nil, bus.Errorf(bus.ErrMethodNotFound,
		"method %q is not available when several MCP servers are aggregated; select one server with /mcp/{server} to use it", msg.Method)
}

// params decodes a request's params object.
func params(msg *bus.Message) (map[string]json.RawMessage, *bus.Error) {
	var p map[string]json.RawMessage
	if json.Unmarshal(msg.Params, &p) != nil || p == nil {
		return nil, bus.Errorf(bus.ErrInvalidParams, "%s: params must be an object", msg.Method)
	}
	return p, nil
}

func stringParam(p map[string]json.RawMessage, key string) string {
	var s string
	_ = json.Unmarshal(p[key], &s)
	return s
}

// callByName routes tools/call or prompts/get by the exposed name, sending
// the upstream its bare name and every other param as it came.
func (r *Router) callByName(ctx context.Context, a *agg, msg *bus.Message, k *kind) ([]byte, *bus.Error) {
	p, e := params(msg)
	if e != nil {
		return nil, e
	}
	name := stringParam(p, "name")
	if name == "" {
		return nil, bus.Errorf(bus.ErrInvalidParams, "%s: params.name is required", msg.Method)
	}
	return r.callNamed(ctx, a, msg, k, p, name)
}

// callNamed routes msg, whose params are p, to the server behind the exposed
// name, with the bare name in p (tool search's call_tool comes here too).
func (r *Router) callNamed(ctx context.Context, a *agg, msg *bus.Message, k *kind, p map[string]json.RawMessage, name string) ([]byte, *bus.Error) {
	target, e := r.lookupName(ctx, a, k, name)
	if e != nil {
		return nil, e
	}
	p["name"], _ = json.Marshal(target.name)
	return r.forwardTo(ctx, a, target.server, msg, p)
}

// callByURI routes resources/read, /subscribe and /unsubscribe by params.uri.
func (r *Router) callByURI(ctx context.Context, a *agg, msg *bus.Message) ([]byte, *bus.Error) {
	p, e := params(msg)
	if e != nil {
		return nil, e
	}
	uri := stringParam(p, "uri")
	if uri == "" {
		return nil, bus.Errorf(bus.ErrInvalidParams, "%s: params.uri is required", msg.Method)
	}
	server, e := r.lookupURI(ctx, a, uri, false)
	if e != nil {
		return nil, e
	}
	return r.forwardTo(ctx, a, server, msg, nil)
}

// complete routes completion/complete by params.ref: a prompt by its exposed
// name (rewritten to the bare one), a resource by URI or template.
func (r *Router) complete(ctx context.Context, a *agg, msg *bus.Message) ([]byte, *bus.Error) {
	p, e := params(msg)
	if e != nil {
		return nil, e
	}
	var ref map[string]json.RawMessage
	if json.Unmarshal(p["ref"], &ref) != nil || ref == nil {
		return nil, bus.Errorf(bus.ErrInvalidParams, "completion/complete: params.ref must be an object")
	}
	switch t := stringParam(ref, "type"); t {
	case "ref/prompt":
		name := stringParam(ref, "name")
		target, e := r.lookupName(ctx, a, kindPrompts, name)
		if e != nil {
			return nil, e
		}
		ref["name"], _ = json.Marshal(target.name)
		p["ref"] = marshal(ref)
		return r.forwardTo(ctx, a, target.server, msg, p)
	case "ref/resource":
		uri := stringParam(ref, "uri")
		server, e := r.lookupURI(ctx, a, uri, true)
		if e != nil {
			return nil, e
		}
		return r.forwardTo(ctx, a, server, msg, nil)
	default:
		return nil, bus.Errorf(bus.ErrInvalidParams, "completion/complete: unknown params.ref.type %q (want ref/prompt or ref/resource)", t)
	}
}

// forwardTo sends msg to one of the aggregation's servers, with params p
// instead of the original ones when p is not nil, and relays its answer.
func (r *Router) forwardTo(ctx context.Context, a *agg, server string, msg *bus.Message, p map[string]json.RawMessage) ([]byte, *bus.Error) {
	body := a.raw
	if p != nil {
		raw := marshal(p)
		body = requestBody(msg.ID, msg.Method, raw)
	}
	return r.forward(ctx, a.h, body, a.env, a.servers[a.index(server)])
}

// setLevel sends logging/setLevel to every server of the session: {} when at
// least one took it, else an error naming each failure.
func (r *Router) setLevel(ctx context.Context, a *agg, msg *bus.Message) ([]byte, *bus.Error) {
	all := make([]int, len(a.servers))
	for i := range all {
		all[i] = i
	}
	legs := r.fanOut(ctx, a, all, func(int) []byte { return a.raw })
	var failures []bus.PartialFailure
	var kinds []bus.Kind
	for _, l := range legs {
		if l.err == nil && len(l.msg.Error) == 0 {
			continue
		}
		f := l.failure(msg.Method)
		failures = append(failures, bus.PartialFailure{Server: l.server.Name, Code: f.Kind.Code, Message: f.Message})
		kinds = append(kinds, f.Kind)
		r.log.Debug("aggregation: a server did not take logging/setLevel", "request_id", a.env.RequestID,
			"server", l.server.Name, "code", f.Kind.Code, "err", f.Message)
	}
	if len(failures) == len(legs) {
		return nil, allFailed(msg.Method, failures, kinds)
	}
	return bus.ResultResponse(msg.ID, json.RawMessage(`{}`)), nil
}
