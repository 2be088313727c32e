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
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/callset"
	"github.com/mcpbus/mcpbus/internal/usagepub"
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
	// Follow serves the agents of the agents bucket too (the agent admin
	// API's, bus.BucketAgents), following it; Secrets opens their sealed
	// credentials and Env resolves their os.environ/ references.
	Follow  bool
	Secrets *bus.SecretKey
	Env     config.LookupEnv
}

// Service is the running agent workers of one process: a micro service
// per agent (its rpc and card endpoints) and one for the list, whose Stop
// also cancels the calls under way.
type Service struct {
	o         Options
	nc        *nats.Conn
	cancel    *nats.Subscription
	log       *slog.Logger
	calls     *callset.Set
	usage     *usagepub.Publisher
	list      micro.Service
	follower  *bus.KVFollower
	transport http.RoundTripper

	mu     sync.Mutex
	served map[string]*served // agent name -> its service
	file   []string           // the config file's agents, in order
}

// served is one agent and the micro service that serves it.
type served struct {
	a        *agent
	svc      micro.Service
	fromFile bool
}

// Start serves agents (the config file's) on nc, and with o.Follow those
// of the agents bucket, following it: an agent written there is served
// (or replaced, or stopped) at once. A bucket agent named like a file
// agent is left out: the file's wins.
func Start(nc *nats.Conn, agents []config.Agent, o Options) (*Service, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Transport == nil {
		o.Transport = credential.NewBaseTransport()
	}
	s := &Service{o: o, nc: nc, log: o.Log, calls: callset.New(o.MaxInFlight),
		usage: usagepub.New(nc, o.Log, "agent", func(ev bus.UsageEvent) string { return bus.AgentUsageSubject(ev.Team, ev.Server, ev.Method) }), served: map[string]*served{}, transport: o.Transport}
	list, err := micro.AddService(nc, micro.Config{Name: bus.ServiceAgentWorker, Version: version.Version,
		Description: "A2A agents: the agents a caller may use"})
	if err != nil {
		s.usage.Close()
		return nil, err
	}
	s.list = list
	if err := list.AddEndpoint("list", micro.HandlerFunc(s.listAgents), micro.WithEndpointSubject(bus.SubjectAgentList),
		micro.WithEndpointQueueGroup(bus.AgentListQueue)); err != nil {
		return s.fail(err)
	}
	for _, c := range agents {
		if err := s.serve(c, true); err != nil {
			return s.fail(err)
		}
		s.file = append(s.file, c.Name)
	}
	// A request id on SubjectCancel stops its call: the client left, or its
	// key was revoked.
	if s.cancel, err = nc.Subscribe(bus.SubjectCancel, func(m *nats.Msg) { s.calls.Cancel(string(m.Data), errCancelled) }); err != nil {
		return s.fail(err)
	}
	if o.Follow {
		if s.follower, err = bus.FollowKV(context.Background(), nc, bus.BucketAgents, nil, s.apply); err != nil {
			return s.fail(fmt.Errorf("follow the agents bucket %s (the registry makes it): %w", bus.BucketAgents, err))
		}
	}
	return s, nil
}

// fail stops what Start started.
func (s *Service) fail(err error) (*Service, error) {
	_ = s.Stop()
	return nil, err
}

// serve starts serving agent c, replacing the service of the same name
// (the new one joins the queue group before the old one leaves).
func (s *Service) serve(c config.Agent, fromFile bool) error {
	a := newAgent(c, s.transport, s.log)
	svc, err := micro.AddService(s.nc, micro.Config{Name: bus.ServiceAgentWorker, Version: version.Version,
		Description: "A2A agent " + c.Name + ": JSON-RPC calls with the agent's credentials", Metadata: map[string]string{"agent": c.Name}})
	if err != nil {
		return err
	}
	group := micro.WithEndpointQueueGroup(bus.AgentQueueGroup(c.Name))
	if err := svc.AddEndpoint("rpc", micro.HandlerFunc(func(req micro.Request) { s.take(a, req) }),
		micro.WithEndpointSubject(bus.AgentRPC(c.Name)), group); err != nil {
		_ = svc.Stop()
		return err
	}
	if err := svc.AddEndpoint("card", micro.HandlerFunc(func(req micro.Request) { s.card(a, req) }),
		micro.WithEndpointSubject(bus.AgentCard(c.Name)), group); err != nil {
		_ = svc.Stop()
		return err
	}
	s.mu.Lock()
	old := s.served[c.Name]
	s.served[c.Name] = &served{a: a, svc: svc, fromFile: fromFile}
	s.mu.Unlock()
	if old != nil {
		_ = old.svc.Stop() // its calls under way finish
	}
	return nil
}

// apply serves, replaces or stops an agent of the bucket as it changes.
func (s *Service) apply(e bus.KVEntry) {
	s.mu.Lock()
	cur := s.served[e.Key]
	s.mu.Unlock()
	if cur != nil && cur.fromFile {
		if !e.Deleted {
			s.log.Warn("agents bucket: an agent of the config file has this name; the file's is served", "agent", e.Key)
		}
		return
	}
	if e.Deleted {
		if cur != nil {
			s.mu.Lock()
			delete(s.served, e.Key)
			s.mu.Unlock()
			_ = cur.svc.Stop()
			s.log.Info("agent stopped: deleted from the agents bucket", "agent", e.Key)
		}
		return
	}
	c, err := s.agentOf(e)
	if err != nil {
		s.log.Warn("agents bucket: an agent is not served", "agent", e.Key, "err", err)
		return
	}
	if err := s.serve(c, false); err != nil {
		s.log.Error("agents bucket: could not serve an agent", "agent", e.Key, "err", err)
		return
	}
	s.log.Info("agent served from the agents bucket", "agent", e.Key, "revision", e.Revision)
}

// agentOf reads a bucket entry as an agent, by the config file's rules.
func (s *Service) agentOf(e bus.KVEntry) (config.Agent, error) {
	rec, err := bus.DecodeAgentRecord(e.Key, e.Value)
	if err != nil {
		return config.Agent{}, err
	}
	if rec, err = s.o.Secrets.OpenAgent(rec); err != nil {
		return config.Agent{}, err
	}
	c, _, err := config.ParseAgentJSON(rec.Written(), s.o.Env)
	return c, err
}

// Stop stops serving; calls under way are cancelled, then the usage
// events still queued get a moment to go out.
func (s *Service) Stop() error {
	s.follower.Stop()
	if s.cancel != nil {
		_ = s.cancel.Unsubscribe()
	}
	err := s.list.Stop()
	s.mu.Lock()
	for _, sv := range s.served {
		_ = sv.svc.Stop()
	}
	s.mu.Unlock()
	s.calls.CancelAll(errStopping)
	s.usage.Close()
	return err
}

// take runs req on its own goroutine, within the process's slots.
func (s *Service) take(a *agent, req micro.Request) {
	r := bus.NewReply(s.nc, req)
	h := nats.Header(req.Headers())
	body := req.Data()
	if !s.calls.Go(func() { s.answer(a, r, h, body) }) {
		bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "this agent worker is at its limit of concurrent calls"))
	}
}

// answer answers one JSON-RPC request for agent a.
func (s *Service) answer(a *agent, r bus.Reply, h nats.Header, body []byte) {
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
	deadline := start.Add(DefaultTimeout)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	ctx, done := s.calls.Context(env.RequestID, deadline)
	defer done()
	c := &call{a: a, env: env, nc: s.nc, reply: r, clientWire: h.Get(bus.HeaderA2AVersion), bytesIn: len(body)}
	c.run(ctx, body)
	s.usage.Enqueue(c.usageEvent(start, time.Now()))
}

// UsageStats reports the process's agent usage events since it started.
func (s *Service) UsageStats() (stored, lost uint64) {
	return s.usage.Stats()
}
