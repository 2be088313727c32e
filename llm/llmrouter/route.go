package llmrouter

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

// route sends the request to the group's deployments, one after another
// in pick order, until one answers; a failure that another deployment
// could not fix (the request itself is wrong), or one after chunks were
// streamed, is the answer.
func (r *Router) route(ctx context.Context, g *group, hdr nats.Header, body []byte, reply bus.Reply) {
	var last *bus.Error
	for _, d := range pick(g.deployments) {
		msg := &nats.Msg{Subject: bus.LLMDeploymentRPC(d.ID), Data: body, Header: nats.Header{}}
		for k, v := range hdr {
			msg.Header[k] = v
		}
		msg.Header.Set(bus.HeaderLLMOp, bus.LLMOpChat)
		msg.Header.Set(bus.HeaderLLMModel, g.info.Name)
		resp, err := r.nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			last = r.requestError(ctx, d, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		e := bus.ReplyError(resp)
		if e == nil {
			reply.Msg(resp.Data, answerHeader(resp))
			return
		}
		last = e
		if resp.Header.Get(bus.HeaderLLMStreamed) != "" || !retryable(e) {
			break
		}
		r.log.Debug("LLM deployment failed; trying the next", "model", g.info.Name, "deployment", d.ID, "err", e.Message)
	}
	if last == nil {
		last = bus.Errorf(bus.ErrServiceUnavailable, "model %s has no deployment to try", g.info.Name)
	}
	_ = reply.ErrorWith(last, nil)
}

// answerHeader is what of a worker's answer goes on to the ingress.
func answerHeader(resp *nats.Msg) nats.Header {
	h := nats.Header{}
	for _, k := range []string{bus.HeaderLLMDeployment, bus.HeaderLLMStreamed} {
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
	case ctx.Err() != nil:
		return bus.Errorf(bus.ErrUpstreamTimeout, "model %s did not answer in time", d.Name)
	}
	return bus.Wrap(bus.ErrServiceUnavailable, err, "deployment %s of model %s could not be asked", d.ID, d.Name)
}

// retryable reports whether another deployment might answer where one
// failed with e: not when the request itself was refused.
func retryable(e *bus.Error) bool {
	switch e.Kind {
	case bus.ErrBadRequest, bus.ErrProviderRejected, bus.ErrContextLength, bus.ErrInvalidParams, bus.ErrTooLarge:
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
