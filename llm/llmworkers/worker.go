// Package llmworkers serves LLM deployments on the bus: one queue group per
// deployment (bus.LLMDeploymentRPC), so every replica that holds a
// deployment's provider key shares its load. A worker takes a request the
// LLM router sends, makes the provider call on the provider's wire
// (openai.go), and answers with the provider's answer, or, for a streaming
// request, publishes each chunk to the POST's stream as it comes. The
// provider key is set on the wire here and nowhere else, and scrubbed from
// everything a worker sends back.
package llmworkers

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/callset"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// DefaultTimeout bounds one provider call when the deployment sets none
// (LiteLLM's default request timeout).
const DefaultTimeout = 10 * time.Minute

// Options configures Start.
type Options struct {
	Log *slog.Logger
	// MaxInFlight bounds this process's concurrent provider calls (all
	// deployments); past it a request is refused as overloaded, and the
	// router tries another replica's or deployment.
	MaxInFlight int
	// Transport makes the provider calls (nil: a fresh http.Transport).
	Transport http.RoundTripper
	// Timeout bounds a call of a deployment without a timeout of its own
	// (router_settings.timeout; 0: DefaultTimeout).
	Timeout time.Duration
}

// Service is the running workers of one process: their micro service
// (endpoint per deployment), whose Stop also cancels the calls under way.
type Service struct {
	micro.Service
	nc     *nats.Conn
	cancel *nats.Subscription
	log    *slog.Logger
	calls  *callset.Set
	live   *bus.Responder // liveness: acknowledgement, heartbeats, recalls
	// timeout bounds a call of a deployment without its own.
	timeout time.Duration
}

// Served reports whether mcpbus's workers speak m's provider wire.
func Served(m config.Model) bool { return wireOf(m) != nil }

// Start serves models (those Served) on nc.
func Start(nc *nats.Conn, models []config.Model, o Options) (*Service, error) {
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
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	s := &Service{nc: nc, log: o.Log, calls: callset.New(o.MaxInFlight), timeout: o.Timeout, live: bus.NewResponder(nc)}
	svc, err := micro.AddService(nc, micro.Config{Name: bus.ServiceLLMWorker, Version: version.Version,
		Description: "LLM deployments: provider calls with the provider key"})
	if err != nil {
		return nil, err
	}
	s.Service = svc
	for _, m := range models {
		w := wireOf(m)
		if w == nil {
			continue
		}
		d := &deployment{m: m, wire: w, scrub: credential.NewScrubber(m.APIKey), log: o.Log,
			client: &http.Client{Transport: transport, CheckRedirect: credential.RefuseCrossOrigin}}
		err := svc.AddEndpoint("deployment-"+m.ID, micro.HandlerFunc(func(req micro.Request) { s.take(d, req) }),
			micro.WithEndpointSubject(bus.LLMDeploymentRPC(m.ID)), micro.WithEndpointQueueGroup(bus.LLMQueueGroup(m.ID)),
			micro.WithEndpointMetadata(map[string]string{"model": m.Name, "provider": m.Provider}))
		if err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	// A request id on SubjectCancel stops its call: the client left, or its
	// key was revoked.
	if s.cancel, err = nc.Subscribe(bus.SubjectCancel, func(m *nats.Msg) { s.calls.Cancel(string(m.Data), errCancelled) }); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops serving; calls under way are cancelled.
func (s *Service) Stop() error {
	_ = s.cancel.Unsubscribe()
	err := s.Service.Stop()
	s.calls.CancelAll(errStopping)
	s.live.Close()
	return err
}

// take runs req on its own goroutine, within the process's bound. A
// request the router sent with liveness is acknowledged and kept alive by
// heartbeats until answered (bus/liveness.go), so the router knows within
// seconds when a worker that took it died.
func (s *Service) take(d *deployment, req micro.Request) {
	ok, finished := s.live.Take(req)
	if !ok {
		return // taken too late: its sender has moved on
	}
	r := s.live.Reply(req)
	h := nats.Header(req.Headers())
	body := req.Data()
	if !s.calls.Go(func() { defer finished(); s.serve(d, r, h, body) }) {
		finished()
		_ = r.Error(bus.Errorf(bus.ErrOverloaded, "this LLM worker is at its limit of concurrent calls"))
	}
}

// serve answers one request.
func (s *Service) serve(d *deployment, r bus.Reply, h nats.Header, body []byte) {
	env, err := bus.ReadEnvelope(h)
	if err != nil {
		_ = r.Error(bus.AsError(err))
		return
	}
	op := h.Get(bus.HeaderLLMOp)
	if op != bus.LLMOpChat && op != bus.LLMOpEmbeddings {
		_ = r.Error(bus.Errorf(bus.ErrBadRequest, "LLM worker: unknown operation %q", bus.Shorten(op, 32)))
		return
	}
	timeout := d.m.Timeout
	if timeout <= 0 {
		timeout = s.timeout
	}
	deadline := time.Now().Add(timeout)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	ctx, done := s.calls.Context(env.RequestID, deadline)
	defer done()
	c := &call{d: d, env: env, nc: s.nc, reply: r, model: h.Get(bus.HeaderLLMModel)}
	if op == bus.LLMOpEmbeddings {
		c.embeddings(ctx, body)
		return
	}
	c.chat(ctx, body)
}

// deployment is one served deployment.
type deployment struct {
	m      config.Model
	wire   wire
	scrub  *credential.Scrubber
	client *http.Client
	log    *slog.Logger
}
