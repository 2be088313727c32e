package toolworkers

import (
	"encoding/json"
	"hash/fnv"

	"github.com/mcpbus/mcpbus/bus"
)

// The canary (bus/server_ops.go): a stable worker whose record names a
// canary holds a second worker for it, built from the same record with the
// canary's URL (or command and arguments) in place of the server's: same
// credentials, headers, timeout and limits, but its own upstream sessions,
// catalog cache, limiter and circuit breaker, so a failing canary never opens
// the stable upstream's breaker. It is not on the bus as a service: the
// stable worker takes every call and hands the canary's share to it
// (variantFor); it subscribes to what reaches its calls and sessions
// (cancellations, ended sessions, answers to its server-to-client requests,
// list changes). Its calls are counted under variant="canary".

const (
	variantStable = "stable"
	variantCanary = "canary"
)

// startCanary starts the canary of w's record, if it names one. A canary that
// cannot run here (a stdio command this process's config file does not
// name) is logged and left out: the stable upstream serves every call.
func (w *Worker) startCanary(spec bus.ServerSpec, o Options) {
	cup := w.up.Canary()
	if cup == nil {
		return
	}
	if cup.Transport == "stdio" && !o.AllowAPIStdio {
		cs := spec
		cs.Command, cs.Args = spec.CanaryCommand, spec.CanaryArgs
		if err := namedByConfig(cs, o.ConfigServers); err != nil {
			w.log.Error("canary not started: every call goes to the stable upstream", "err", err)
			return
		}
	}
	c := newWorker(w.nc, cup, spec, o)
	c.variant = variantCanary
	c.pins = w.pins // the same pins: a canary's changed tools wait for approval too (pins.go)
	c.log = c.log.With("variant", variantCanary)
	if err := c.subscribe(); err != nil {
		c.Stop()
		w.log.Error("canary not started: every call goes to the stable upstream", "err", err)
		return
	}
	w.metrics.add(c)
	w.canary.Store(c)
	w.log.Info("canary upstream started", "percent", w.up.CanaryPercent, "transport", cup.Transport)
}

// variantLabel is w's variant as metrics name it.
func (w *Worker) variantLabel() string {
	if w.variant == "" {
		return variantStable
	}
	return w.variant
}

// variantFor picks the worker that serves a call: the canary for
// canary_percent of the downstream sessions (by a hash of the server and the
// session id, so a session stays on one variant and a run is reproducible),
// calls without a session by canaryKey; else w.
func (w *Worker) variantFor(env bus.Envelope, msg *bus.Message) *Worker {
	c := w.canary.Load()
	if c == nil {
		return w
	}
	if CanaryBucket(w.up.Name, canaryKey(env, msg)) < w.up.CanaryPercent {
		return c
	}
	return w
}

// canaryKey is what a call is bucketed by: its session; without one (a
// 2026-07-28 caller, the REST surface) a tools/call, prompts/get or
// resources/read by what it asks (its key, method, name or URI and
// arguments), so that an input_required retry, which repeats them beside
// inputResponses and requestState, reaches the variant whose upstream
// asked (the spec: the same upstream) while different calls spread;
// anything else by its request id.
func canaryKey(env bus.Envelope, msg *bus.Message) string {
	if env.Session != "" {
		return env.Session
	}
	if msg != nil {
		switch msg.Method {
		case bus.MethodToolsCall, bus.MethodPromptsGet, bus.MethodResourcesRead:
			var p struct {
				Name      string          `json:"name"`
				URI       string          `json:"uri"`
				Arguments json.RawMessage `json:"arguments"`
			}
			if json.Unmarshal(msg.Params, &p) == nil {
				return env.Caller.KeyID + "\x00" + msg.Method + "\x00" + p.Name + p.URI + "\x00" + string(p.Arguments)
			}
		}
	}
	return env.RequestID
}

// CanaryBucket is where a session (or a sessionless request) of server falls
// in 0..99: below canary_percent it goes to the canary.
func CanaryBucket(server, key string) int {
	h := fnv.New32a()
	h.Write([]byte(server))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int(h.Sum32() % 100)
}
