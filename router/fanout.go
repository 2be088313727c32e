package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// listGrace is how long past a list leg's limit the router waits for the
// worker's own (more precise) timeout error.
const listGrace = 250 * time.Millisecond

// agg is one request aggregating several servers: the servers (by name), the
// request's envelope and headers, and per server the key of what makes its
// catalog caller-specific (catalog.go).
type agg struct {
	env     bus.Envelope
	h       nats.Header
	raw     []byte // the request as it came
	servers []bus.ServerSpec
	filters []string
	// ns are the servers' namespaces (names.go), sep the separator; amb is
	// set when two namespaces overlap, so names could collide.
	ns  []string
	sep string
	amb bool
}

func (a *agg) has(server string) bool {
	for _, s := range a.servers {
		if s.Name == server {
			return true
		}
	}
	return false
}

// leg is one server's part of a fanned-out request.
type leg struct {
	server bus.ServerSpec
	index  int          // in agg.servers
	msg    *bus.Message // the answer (result or upstream error), when err is nil
	err    *bus.Error   // no answer
}

// failure describes a failed leg for the caller: a gateway error, or an
// upstream JSON-RPC error (reported as UPSTREAM_UNAVAILABLE with its code).
func (l *leg) failure(method string) *bus.Error {
	if l.err != nil {
		return l.err
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(l.msg.Error, &e)
	msg := e.Message
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q answered %s with error %d: %s", l.server.Name, method, e.Code, msg)
}

// listLimit bounds one server's part of an aggregated list or fan-out.
func (r *Router) listLimit(s bus.ServerSpec) time.Duration {
	return min(r.o.ListTimeout, bus.CallTimeout(s))
}

// ask sends body to subject (one of s's worker subjects) with headers h and
// waits at most limit (and the caller's deadline) plus grace.
func (r *Router) ask(ctx context.Context, h nats.Header, env bus.Envelope, s bus.ServerSpec, subject string, body []byte, limit, grace time.Duration) (*nats.Msg, *bus.Error) {
	if e := bus.DrainedError(s); e != nil {
		return nil, e // its part of an aggregation fails by name, at once
	}
	deadline := time.Now().Add(limit)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	out := r.legHeader(h, s, 2)
	out[bus.HeaderDeadline] = []string{formatMillis(deadline)}
	bus.TraceContext.Inject(ctx, bus.HeaderCarrier(out))
	wctx, cancel := context.WithDeadline(context.Background(), deadline.Add(grace))
	defer cancel()
	// With liveness: the workers' endpoints take it.
	reply, err := r.workers.Request(wctx, &nats.Msg{Subject: subject, Data: body, Header: out})
	if err != nil {
		return nil, bus.WorkerError(s, limit, err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	return reply, nil
}

// legHeader copies the headers of a message for s's workers, keeping of the
// forwarded client headers only s's own (bus.ForwardFor): a request for one
// server carries no other server's per-request credential. spare is room
// for the headers the caller adds.
func (r *Router) legHeader(h nats.Header, s bus.ServerSpec, spare int) nats.Header {
	out := make(nats.Header, len(h)+spare)
	var names []string
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, bus.HeaderForwardPrefix); ok && len(v) > 0 {
			if names == nil {
				names = r.cache.Names()
			}
			if len(bus.ForwardFor(map[string]string{name: v[0]}, s, names)) == 0 {
				continue
			}
		}
		out[k] = v
	}
	return out
}

// askRPC sends one JSON-RPC request to s's worker and parses the answer.
func (r *Router) askRPC(ctx context.Context, h nats.Header, env bus.Envelope, s bus.ServerSpec, body []byte, limit time.Duration) (*bus.Message, *bus.Error) {
	reply, e := r.ask(ctx, h, env, s, bus.ToolRPC(s.Name), body, limit, listGrace)
	if e != nil {
		return nil, e
	}
	msg, perr := bus.ParseMessage(reply.Data)
	if perr != nil {
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "the worker for server %q sent an unreadable answer", s.Name)
	}
	return msg, nil
}

// fanOut asks every listed server in parallel; body makes each one's request.
func (r *Router) fanOut(ctx context.Context, a *agg, which []int, body func(i int) []byte) []leg {
	legs := make([]leg, len(which))
	var wg sync.WaitGroup
	for n, i := range which {
		s := a.servers[i]
		legs[n] = leg{server: s, index: i}
		wg.Add(1)
		go func(l *leg) {
			defer wg.Done()
			l.msg, l.err = r.askRPC(ctx, a.h, a.env, s, body(i), r.listLimit(s))
		}(&legs[n])
	}
	wg.Wait()
	return legs
}

// allFailed is the error for a fan-out no server answered: the first
// failure's kind, a message naming every server's reason.
func allFailed(method string, failures []bus.PartialFailure, kinds []bus.Kind) *bus.Error {
	msg := fmt.Sprintf("no MCP server answered %s:", method)
	for i, f := range failures {
		if i > 0 {
			msg += ";"
		}
		msg += fmt.Sprintf(" %s: %s", f.Server, f.Message)
	}
	return &bus.Error{Kind: kinds[0], Message: msg}
}

// marshal encodes v without HTML escaping, so what upstreams wrote (a tool
// description with "<", say) passes on as they wrote it.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// requestBody encodes a JSON-RPC request.
func requestBody(id json.RawMessage, method string, params json.RawMessage) []byte {
	m := bus.Message{JSONRPC: "2.0", ID: id, Method: method, Params: params}
	return marshal(m)
}

// withoutStream is h for a request made on the router's own behalf: nothing
// it causes is sent to the caller's stream.
func withoutStream(h nats.Header) nats.Header {
	out := make(nats.Header, len(h))
	for k, v := range h {
		if k != bus.HeaderStream {
			out[k] = v
		}
	}
	return out
}
