package llmrouter

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

// route answers the request from group g (complete) and sends the answer
// on; it returns the answer it sent, or the failure.
func (r *Router) route(ctx context.Context, env bus.Envelope, g *group, hdr nats.Header, body []byte, reply bus.Reply) (*nats.Msg, *bus.Error) {
	resp, answered, f := r.complete(ctx, g, hdr, body, env)
	if f != nil {
		_ = reply.Error(f.Error)
		return nil, f.Error
	}
	reply.Msg(resp.Data, answerHeader(resp, answered))
	return resp, nil
}

// complete gets an answer from group g: its deployments first, with
// retries (attempt), then its fallbacks, LiteLLM's way (fallback.go); it
// returns the answer and the group that gave it.
func (r *Router) complete(ctx context.Context, g *group, hdr nats.Header, body []byte, env bus.Envelope) (*nats.Msg, *group, *failure) {
	resp, e := r.attempt(ctx, g, g.deployments, hdr, body)
	if e == nil {
		return resp, g, nil
	}
	if e.streamed {
		return nil, nil, e
	}
	for _, fb := range r.fallbacks(env, g, e.Error) {
		if ctx.Err() != nil {
			break
		}
		r.log.Debug("LLM model group failed; trying its fallback", "model", g.info.Name, "fallback", fb.group.info.Name, "err", e.Message)
		resp, fe := r.attempt(ctx, fb.group, fb.deployments, hdr, body)
		if fe == nil {
			return resp, fb.group, nil
		}
		if fe.streamed {
			return nil, nil, fe
		}
	}
	return nil, nil, e
}

// failure is why a group did not answer; streamed: chunks went out, so
// nothing may be tried again.
type failure struct {
	*bus.Error
	streamed bool
}

// attempt sends the request to deployments of g, one after another in
// pick order, skipping those cooling down, for at most 1 + num_retries
// tries (a group of one deployment tries it again), until one answers. A
// failure another deployment could not fix (the request itself was
// refused), or one after chunks went out, ends the attempt.
func (r *Router) attempt(ctx context.Context, g *group, ds []config.Model, hdr nats.Header, body []byte) (*nats.Msg, *failure) {
	tries := 1 + r.retries
	var last *failure
	var order []config.Model
	for try := 0; try < tries; try++ {
		if len(order) == 0 {
			order = pick(ds)
		}
		d, ok := r.nextUp(&order)
		if !ok {
			if last != nil {
				return nil, last
			}
			return nil, &failure{Error: r.allCooling(g, ds)}
		}
		if try > 0 && r.o.Routing.RetryAfter > 0 {
			select {
			case <-time.After(r.o.Routing.RetryAfter):
			case <-ctx.Done():
				return nil, last
			}
		}
		resp, f, status := r.ask(ctx, g, d, hdr, body)
		if f == nil {
			r.health.succeeded(d.ID)
			return resp, nil
		}
		last = f
		if r.health.failed(d.ID, len(ds), f.Error, status) {
			r.log.Info("LLM deployment cooling down", "model", g.info.Name, "deployment", d.ID, "for", r.health.cooldown.String(), "err", f.Message)
		}
		if f.streamed || !retryable(f.Error) || ctx.Err() != nil {
			return nil, f
		}
		r.log.Debug("LLM deployment failed; trying again", "model", g.info.Name, "deployment", d.ID, "err", f.Message)
	}
	return nil, last
}

// nextUp takes the first deployment of order that is not cooling down.
func (r *Router) nextUp(order *[]config.Model) (config.Model, bool) {
	for len(*order) > 0 {
		d := (*order)[0]
		*order = (*order)[1:]
		if r.health.coolingUntil(d.ID).IsZero() {
			return d, true
		}
	}
	return config.Model{}, false
}

// allCooling is the error when every deployment to try is cooling down:
// 429, LiteLLM's words, with the wait until the first is back.
func (r *Router) allCooling(g *group, ds []config.Model) *bus.Error {
	var first time.Time
	for _, d := range ds {
		if u := r.health.coolingUntil(d.ID); !u.IsZero() && (first.IsZero() || u.Before(first)) {
			first = u
		}
	}
	e := bus.Errorf(bus.ErrRateLimited, "All deployments for selected model are in cooldown: model %s", g.info.Name)
	if !first.IsZero() {
		e.RetryAfter = first.Sub(r.health.now())
	}
	return e
}

// ask sends the request to deployment d of g.
func (r *Router) ask(ctx context.Context, g *group, d config.Model, hdr nats.Header, body []byte) (*nats.Msg, *failure, int) {
	msg := &nats.Msg{Subject: bus.LLMDeploymentRPC(d.ID), Data: body, Header: maps.Clone(hdr)}
	msg.Header.Set(bus.HeaderLLMModel, g.info.Name)
	resp, err := r.workers.Request(ctx, msg)
	if err != nil {
		f := &failure{Error: r.requestError(ctx, d, err)}
		// A worker lost while it ran a streaming call may have sent chunks
		// already: nothing may be tried again after it.
		f.streamed = bus.IsLivenessError(err) && !errors.Is(err, bus.ErrNotTaken) && hdr.Get(bus.HeaderStream) != ""
		return nil, f, 0
	}
	e := bus.ReplyError(resp)
	if e == nil {
		return resp, nil, 0
	}
	status, _ := strconv.Atoi(resp.Header.Get(bus.HeaderLLMStatus))
	return nil, &failure{Error: e, streamed: resp.Header.Get(bus.HeaderLLMStreamed) != ""}, status
}

// answerHeader is what of a worker's answer goes on to the ingress, and
// the group that answered (a fallback's, maybe).
func answerHeader(resp *nats.Msg, g *group) nats.Header {
	h := nats.Header{bus.HeaderLLMModel: {g.info.Name}}
	for _, k := range []string{bus.HeaderLLMDeployment, bus.HeaderLLMStreamed, bus.HeaderLLMUsage} {
		if v := resp.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return h
}

// requestError is the error of a request no worker answered.
func (r *Router) requestError(ctx context.Context, d config.Model, err error) *bus.Error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return bus.Errorf(bus.ErrServiceUnavailable, "no LLM worker serves deployment %s of model %s", d.ID, d.Name)
	case errors.Is(err, bus.ErrNotTaken):
		return bus.Errorf(bus.ErrWorkerLost, "no live LLM worker of deployment %s of model %s took the request (%d tries); none reached the provider", d.ID, d.Name, bus.AcceptAttempts)
	case bus.IsLivenessError(err):
		return bus.Errorf(bus.ErrWorkerLost, "the LLM worker of deployment %s of model %s stopped while it ran the request", d.ID, d.Name)
	case ctx.Err() != nil:
		return bus.Errorf(bus.ErrUpstreamTimeout, "model %s did not answer in time", d.Name)
	}
	return bus.Wrap(bus.ErrServiceUnavailable, err, "deployment %s of model %s could not be asked", d.ID, d.Name)
}

// retryable reports whether another deployment might answer where one
// failed with e: not when the request itself was refused.
func retryable(e *bus.Error) bool {
	switch e.Kind {
	case bus.ErrBadRequest, bus.ErrProviderRejected, bus.ErrContextLength, bus.ErrContentPolicy, bus.ErrInvalidParams, bus.ErrTooLarge:
		return false
	}
	return true
}

// pick orders a group's deployments for one request, LiteLLM's way: the
// lowest order first (0: unset, after every set order); within an order
// a random draw weighted by weight, else rpm, else tpm, else even.
func pick(ds []config.Model) []config.Model {
	out := make([]config.Model, 0, len(ds))
	byOrder := map[int][]config.Model{}
	var orders []int
	for _, d := range ds {
		o := d.Order
		if o <= 0 {
			o = int(^uint(0) >> 1)
		}
		if _, ok := byOrder[o]; !ok {
			orders = append(orders, o)
		}
		byOrder[o] = append(byOrder[o], d)
	}
	sort.Ints(orders)
	for _, o := range orders {
		out = append(out, shuffle(byOrder[o])...)
	}
	return out
}

// shuffle draws ds one by one, each with a chance in proportion to its
// share.
func shuffle(ds []config.Model) []config.Model {
	left := append([]config.Model(nil), ds...)
	var out []config.Model
	for len(left) > 0 {
		total := 0.0
		for _, d := range left {
			total += share(left, d)
		}
		x := rand.Float64() * total
		i := 0
		for ; i < len(left)-1; i++ {
			x -= share(left, left[i])
			if x < 0 {
				break
			}
		}
		out = append(out, left[i])
		left = append(left[:i], left[i+1:]...)
	}
	return out
}

// share is d's weight among ds: weight when any sets it, else rpm, else
// tpm, else 1.
func share(ds []config.Model, d config.Model) float64 {
	var weights, rpms, tpms bool
	for _, x := range ds {
		weights, rpms, tpms = weights || x.Weight > 0, rpms || x.RPM > 0, tpms || x.TPM > 0
	}
	switch {
	case weights:
		return d.Weight
	case rpms:
		return float64(d.RPM)
	case tpms:
		return float64(d.TPM)
	}
	return 1
}
