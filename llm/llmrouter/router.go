// Package llmrouter is the LLM router, a service on the bus: it answers
// the model list a caller may use (bus.SubjectLLMModels) and routes each
// chat completions request (bus.SubjectLLMChat) to a deployment of the
// model group it names, checking the caller's models permission, trying
// another deployment when one fails before it streamed anything.
package llmrouter

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/usagepub"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultWait bounds a request whose envelope carries no deadline.
const DefaultWait = 10 * time.Minute

// Options configures Start.
type Options struct {
	Log *slog.Logger
	// MaxInFlight bounds concurrent requests (past it: overloaded).
	MaxInFlight int
	// Routing is router_settings' (and litellm_settings') retries,
	// cooldowns and fallbacks.
	Routing config.Routing
	// Now is the clock of cooldowns (nil: time.Now).
	Now func() time.Time
	// Secrets seals approval requests of MCP tools on /v1/responses (nil:
	// tools that need approval cannot be offered).
	Secrets *bus.SecretKey
}

// DefaultRetries are the tries after the first on a group when
// num_retries is unset (OpenAI's SDKs' and LiteLLM's router default).
const DefaultRetries = 2

// Router routes LLM requests.
type Router struct {
	nc      *nats.Conn
	usage   *usagepub.Publisher  // usage events (spend.go)
	workers *bus.WorkerRequester // requests to deployments, with liveness
	o       Options
	log     *slog.Logger
	health  *health
	retries int
	groups  map[string]*group
	byID    map[string]config.Model // deployments by id
	order   []*group                // as configured, for the model list
	slots   chan struct{}
	created int64 // the model list's "created"
}

// group is one model group: the deployments that share a model_name.
type group struct {
	info        bus.ModelGroup
	deployments []config.Model
	hidden      bool // every deployment is discoverable: false
}

// Start serves the router on nc for models (their keys are not used: the
// workers hold them).
func Start(nc *nats.Conn, models []config.Model, o Options) (micro.Service, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Router{nc: nc, o: o, log: o.Log, groups: map[string]*group{}, byID: map[string]config.Model{},
		slots: make(chan struct{}, o.MaxInFlight), created: time.Now().Unix(),
		health: newHealth(o.Now, o.Routing.CooldownTime, o.Routing.AllowedFails), retries: DefaultRetries}
	if o.Routing.NumRetriesSet {
		r.retries = o.Routing.NumRetries
	}
	workers, err := bus.NewWorkerRequester(nc, o.Log)
	if err != nil {
		return nil, err
	}
	r.workers = workers
	r.usage = usagepub.New(nc, o.Log, "LLM", func(ev bus.UsageEvent) string { return bus.UsageSubject(ev.Team, ev.Server, ev.Tool) })
	for _, m := range models {
		m.APIKey = "" // not the router's to hold
		r.byID[m.ID] = m
		g := r.groups[m.Name]
		if g == nil {
			g = &group{info: bus.ModelGroup{Name: m.Name}, hidden: true}
			r.groups[m.Name] = g
			r.order = append(r.order, g)
		}
		g.deployments = append(g.deployments, m)
		g.info.Targets = append(g.info.Targets, m.Provider+"/"+m.Upstream)
		for _, ag := range m.AccessGroups {
			if !slices.Contains(g.info.AccessGroups, ag) {
				g.info.AccessGroups = append(g.info.AccessGroups, ag)
			}
		}
		g.hidden = g.hidden && m.Hidden
	}
	svc, err := micro.AddService(nc, micro.Config{Name: bus.ServiceLLMRouter, Version: version.Version,
		Description: "routes LLM requests to deployments"})
	if err != nil {
		workers.Close()
		return nil, err
	}
	for name, ep := range map[string]struct {
		subject string
		h       func(bus.Envelope, nats.Header, []byte, bus.Reply)
	}{
		"models":     {bus.SubjectLLMModels, r.models},
		"chat":       {bus.SubjectLLMChat, r.forward(bus.LLMOpChat)},
		"embeddings": {bus.SubjectLLMEmbeddings, r.forward(bus.LLMOpEmbeddings)},
		"responses":  {bus.SubjectLLMResponses, r.responses}, // responses.go
	} {
		if err := svc.AddEndpoint(name, r.async(ep.h), micro.WithEndpointSubject(ep.subject)); err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	return &service{Service: svc, workers: workers, usage: r.usage}, nil
}

// service is the router's micro service; stopping it also ends the
// subscription of its requests' replies.
type service struct {
	micro.Service
	workers *bus.WorkerRequester
	usage   *usagepub.Publisher
}

func (s *service) Stop() error {
	err := s.Service.Stop()
	s.workers.Close()
	s.usage.Close()
	return err
}

// async runs h on its own goroutine within the router's slots.
func (r *Router) async(h func(env bus.Envelope, hdr nats.Header, body []byte, reply bus.Reply)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		select {
		case r.slots <- struct{}{}:
		default:
			bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "the LLM router is at its limit of concurrent requests"))
			return
		}
		hdr, body, reply := nats.Header(req.Headers()), req.Data(), bus.NewReply(r.nc, req)
		if hdr == nil {
			hdr = nats.Header{} // ReadEnvelope refuses it; the handlers may still set headers on it
		}
		go func() {
			defer func() { <-r.slots }()
			env, err := bus.ReadEnvelope(hdr)
			if err != nil {
				_ = reply.Error(bus.AsError(err))
				return
			}
			h(env, hdr, body, reply)
		}()
	})
}

// models answers the model groups the caller may use, in OpenAI's shape.
func (r *Router) models(env bus.Envelope, _ nats.Header, _ []byte, reply bus.Reply) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	out := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, g := range r.order {
		if !g.hidden && env.Caller.Permissions.AllowsModel(g.info) {
			out.Data = append(out.Data, model{ID: g.info.Name, Object: "model", Created: r.created, OwnedBy: "openai"})
		}
	}
	b, _ := json.Marshal(out)
	_ = reply.Respond(b)
}

// forward routes a chat completions or embeddings request (op) to a
// deployment of the model group it names, and answers with the
// deployment's answer.
func (r *Router) forward(op string) func(bus.Envelope, nats.Header, []byte, bus.Reply) {
	return func(env bus.Envelope, hdr nats.Header, body []byte, reply bus.Reply) {
		g, e := r.requested(env, body)
		if e != nil {
			_ = reply.Error(e)
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline(env))
		defer cancel()
		if e := r.admit(ctx, env, g.info.Name); e != nil { // spend.go
			_ = reply.Error(e)
			return
		}
		hdr = maps.Clone(hdr)
		hdr.Set(bus.HeaderLLMOp, op)
		start := time.Now()
		var resp *nats.Msg
		var fail *bus.Error
		if op == bus.LLMOpChat && mcpToolsIn(body) { // chat_mcp.go
			resp, fail = r.chatWithMCP(ctx, env, g, hdr, body, reply)
		} else {
			resp, fail = r.route(ctx, env, g, hdr, body, reply)
		}
		r.record(env, g.info.Name, op, start, len(body), resp, fail)
	}
}

// requested is the model group a request body names, if the caller may
// use it.
func (r *Router) requested(env bus.Envelope, body []byte) (*group, *bus.Error) {
	var req struct {
		Model any `json:"model"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, "the request body is not a JSON object")
	}
	name, ok := req.Model.(string)
	if !ok || name == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "model: required, the name of a model group (GET /v1/models lists them)")
	}
	return r.group(env, name)
}

// group is the model group name, if the caller may use it.
func (r *Router) group(env bus.Envelope, name string) (*group, *bus.Error) {
	g := r.groups[name]
	if g == nil {
		return nil, bus.Errorf(bus.ErrModelNotFound, "model %q is not served by this gateway (GET /v1/models lists the models your key may use)", bus.Shorten(name, 128))
	}
	if !env.Caller.Permissions.AllowsModel(g.info) {
		return nil, bus.Errorf(bus.ErrModelNotAllowed, "key not allowed to access model. This key can only access models=%v. Tried to access %s",
			permittedNames(env.Caller.Permissions), bus.Shorten(name, 128))
	}
	return g, nil
}

// permittedNames is what a denial says the key may use: its own list
// (the first level), else its team's.
func permittedNames(p bus.Permissions) []string {
	if len(p.Models) == 0 {
		return []string{}
	}
	return p.Models[0]
}

func deadline(env bus.Envelope) time.Time {
	if !env.Deadline.IsZero() {
		return env.Deadline
	}
	return time.Now().Add(DefaultWait)
}
