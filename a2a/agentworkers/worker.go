// Package agentworkers serves A2A agents on the bus: one queue group per
// agent (bus.AgentRPC, bus.AgentCard), so every replica that holds an
// agent's credentials shares its load. A worker takes a JSON-RPC request
// the ingress sends for /a2a/{agent}, checks that the caller may see and
// use the agent, calls the agent on its wire (translating between A2A 0.3
// and 1.0 where the caller's differs), and answers with the agent's
// answer, or, for a stream, publishes each event to the POST's stream as
// it comes. The agent's credentials are set on the wire here and nowhere
// else, and scrubbed from everything a worker sends back.
package agentworkers

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultTimeout bounds one agent call whose envelope carries no earlier
// deadline.
const DefaultTimeout = 10 * time.Minute

// Options configures Start.
type Options struct {
	Log *slog.Logger
	// MaxInFlight bounds this process's concurrent agent calls (all
	// agents); past it a call is refused as overloaded.
	MaxInFlight int
	// Transport makes the agent calls (nil: a fresh http.Transport).
	Transport http.RoundTripper
}

// Service is the running agent workers of one process: their micro
// service, whose Stop also cancels the calls under way.
type Service struct {
	micro.Service
	nc     *nats.Conn
	cancel *nats.Subscription
	log    *slog.Logger
	slots  chan struct{}
	agents []*agent
	usage  *usagePublisher

	mu       sync.Mutex
	inflight map[string]context.CancelCauseFunc // request id -> its call
}

// Start serves agents on nc: for each its rpc and card endpoints, and the
// list of them (bus.SubjectAgentList).
func Start(nc *nats.Conn, agents []config.Agent, o Options) (*Service, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	transport := o.Transport
	if transport == nil {
		transport = credential.NewBaseTransport()
	}
	s := &Service{nc: nc, log: o.Log, slots: make(chan struct{}, o.MaxInFlight), inflight: map[string]context.CancelCauseFunc{},
		usage: newUsagePublisher(nc, o.Log)}
	svc, err := micro.AddService(nc, micro.Config{Name: bus.ServiceAgentWorker, Version: version.Version,
		Description: "A2A agents: JSON-RPC calls with the agent's credentials"})
	if err != nil {
		return nil, err
	}
	s.Service = svc
	fail := func(err error) (*Service, error) {
		_ = svc.Stop()
		s.usage.close()
		return nil, err
	}
	for _, c := range agents {
		a := newAgent(c, transport, o.Log)
		s.agents = append(s.agents, a)
		meta := micro.WithEndpointMetadata(map[string]string{"agent": c.Name})
		group := micro.WithEndpointQueueGroup(bus.AgentQueueGroup(c.Name))
		if err := svc.AddEndpoint("agent-"+c.Name, micro.HandlerFunc(func(req micro.Request) { s.take(a, req) }),
			micro.WithEndpointSubject(bus.AgentRPC(c.Name)), group, meta); err != nil {
			return fail(err)
		}
		if err := svc.AddEndpoint("card-"+c.Name, micro.HandlerFunc(func(req micro.Request) { s.card(a, req) }),
			micro.WithEndpointSubject(bus.AgentCard(c.Name)), group, meta); err != nil {
			return fail(err)
		}
	}
	if err := svc.AddEndpoint("list", micro.HandlerFunc(s.list), micro.WithEndpointSubject(bus.SubjectAgentList),
		micro.WithEndpointQueueGroup(bus.AgentListQueue)); err != nil {
		return fail(err)
	}
	// A request id on SubjectCancel stops its call: the client left, or its
	// key was revoked.
	if s.cancel, err = nc.Subscribe(bus.SubjectCancel, func(m *nats.Msg) { s.stop(string(m.Data)) }); err != nil {
		return fail(err)
	}
	return s, nil
}

// Stop stops serving; calls under way are cancelled, then the usage
// events still queued get a moment to go out.
func (s *Service) Stop() error {
	_ = s.cancel.Unsubscribe()
	err := s.Service.Stop()
	s.mu.Lock()
	for _, c := range s.inflight {
		c(errStopping)
	}
	s.mu.Unlock()
	s.usage.close()
	return err
}

// take runs req on its own goroutine, within the process's slots.
func (s *Service) take(a *agent, req micro.Request) {
	select {
	case s.slots <- struct{}{}:
	default:
		bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "this agent worker is at its limit of concurrent calls"))
		return
	}
	r := bus.NewReply(s.nc, req)
	h := nats.Header(req.Headers())
	body := req.Data()
	go func() {
		defer func() { <-s.slots }()
		s.serve(a, r, h, body)
	}()
}

// serve answers one JSON-RPC request for agent a.
func (s *Service) serve(a *agent, r bus.Reply, h nats.Header, body []byte) {
	start := time.Now()
	env, err := bus.ReadEnvelope(h)
	if err != nil {
		_ = r.Error(bus.AsError(err))
		return
	}
	if e := a.admit(env); e != nil {
		_ = r.Error(e) // refused before the agent was called: no usage
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	deadline := start.Add(DefaultTimeout)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	ctx, stop := context.WithDeadline(ctx, deadline)
	defer stop()
	if env.RequestID != "" {
		s.mu.Lock()
		s.inflight[env.RequestID] = cancel
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.inflight, env.RequestID)
			s.mu.Unlock()
		}()
	}
	c := &call{a: a, env: env, nc: s.nc, reply: r, clientWire: h.Get(bus.HeaderA2AVersion), bytesIn: len(body)}
	c.run(ctx, body)
	s.usage.enqueue(c.usageEvent(start, time.Now()))
}

// stop cancels the call of request id, if this process runs it.
func (s *Service) stop(id string) {
	s.mu.Lock()
	c := s.inflight[id]
	s.mu.Unlock()
	if c != nil {
		c(errCancelled)
	}
}

// UsageStats reports the process's agent usage events since it started.
func (s *Service) UsageStats() (stored, lost uint64) {
	return s.usage.stored.Load(), s.usage.lost.Load()
}
