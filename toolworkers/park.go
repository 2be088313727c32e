package toolworkers

// Parked calls: a 2026-07-28 caller in front of a session-era upstream
// (plan docs/plans/mcp-2026-07-28.md, step 7). Mid-call the upstream asks
// its client for input (elicitation/create, sampling/createMessage,
// roots/list) on the call's stream; a stateless-era caller cannot be sent
// a request, so the worker keeps the upstream call open ("parks" it) and
// answers the caller input_required with that request and a requestState
// naming the park (bus.ParkState). The caller's retry, with its answer in
// inputResponses, reaches this replica whichever ingress and router it
// comes through (bus.ParkRef.Subject); the answer goes upstream, the call
// goes on, and the retry gets the result, or the next input_required.
//
// Bounds: a park lives no longer than the server's timeout from the call's
// start (then the upstream call is cancelled); a replica holds at most
// maxParks, a key at most maxParksPerKey; one retry at a time per park. A
// caller that goes away in a round cancels the call, as for any call.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
	"github.com/nats-io/nats.go"
)

const (
	maxParks       = 1024
	maxParksPerKey = 64
)

// park is one upstream call waiting, or able to wait, for its caller's input.
type park struct {
	w       *Worker
	n       uint64
	secret  string
	keyID   string
	method  string
	name    string          // the tool or prompt name, or the resource URI
	caps    json.RawMessage // the caller's capabilities, when it called first
	ctx     context.Context // the upstream call's; ends with the park
	cancel  context.CancelFunc
	events  chan parkEvent // what the upstream call asks, and its end
	answers chan []byte    // the caller's answer to the pending ask

	mu      sync.Mutex
	cur     *callRelay   // the relay of the round in progress (nil: none)
	pending *bus.Message // the ask the caller must answer
	key     string       // its key in inputRequests
	rounds  int
	busy    bool // a round is in progress
	ended   bool
}

// parkEvent is the upstream call asking for input (ask) or ending.
type parkEvent struct {
	ask  *bus.Message
	resp *bus.Message
	err  error
}

// openPark registers a park for a call of env, or refuses it when the
// replica or the key holds too many.
func (w *Worker) openPark(env *bus.Envelope, msg *bus.Message) (*park, *bus.Error) {
	w.parkMu.Lock()
	defer w.parkMu.Unlock()
	if w.parkCount >= maxParks {
		return nil, bus.Errorf(bus.ErrOverloaded, "worker for server %q holds %d calls waiting for their clients' input, the most it may", w.up.Name, maxParks)
	}
	if w.parksByKey[env.Caller.KeyID] >= maxParksPerKey {
		return nil, bus.Errorf(bus.ErrRateLimited, "%s has %d calls to server %q waiting for its input, the most one key may: answer or drop some", env.Caller.Who(), maxParksPerKey, w.up.Name)
	}
	w.parkCount++
	w.parksByKey[env.Caller.KeyID]++
	ctx, cancel := context.WithTimeout(context.Background(), w.up.Timeout)
	p := &park{w: w, n: w.s2cSeq.Add(1), secret: parkSecret(), keyID: env.Caller.KeyID, method: msg.Method,
		name: namedIn(msg), caps: env.ClientCapabilities, ctx: ctx, cancel: cancel,
		events: make(chan parkEvent, 1), answers: make(chan []byte, 1)}
	w.parks.Store(strconv.FormatUint(p.n, 10), p)
	context.AfterFunc(ctx, p.end)
	return p, nil
}

// parkSecret is a park's unguessable part (128 random bits, hex: one
// subject token).
func parkSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// namedIn is what a request names: params.name, or params.uri.
func namedIn(msg *bus.Message) string {
	field := bus.NamedBy(msg.Method)
	if field == "" {
		return ""
	}
	s, _, _ := bus.StringField(msg.Params, field)
	return s
}

// end forgets the park and stops its upstream call (once).
func (p *park) end() {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	p.mu.Unlock()
	p.cancel()
	w := p.w
	w.parks.Delete(strconv.FormatUint(p.n, 10))
	w.parkMu.Lock()
	w.parkCount--
	if w.parksByKey[p.keyID]--; w.parksByKey[p.keyID] <= 0 {
		delete(w.parksByKey, p.keyID)
	}
	w.parkMu.Unlock()
}

// ask is what the upstream call's relay does with a server-to-client
// request: hand it to the round in progress and wait for the caller's
// answer (the JSON-RPC response to send upstream).
func (p *park) ask(ctx context.Context, m *bus.Message) []byte {
	if c := capabilityFor(m.Method); c == "" || !hasCapability(p.caps, c) {
		what := "it did not declare the " + c + " capability"
		if c == "" {
			what = "only elicitation/create, sampling/createMessage and roots/list can be asked of it"
		}
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+": "+what)
	}
	select {
	case p.events <- parkEvent{ask: m}:
	case <-ctx.Done():
		return upstream.Refusal(m.ID, upstream.CodeInternal, "the call ended before its client could be asked")
	}
	select {
	case a := <-p.answers:
		return a
	case <-ctx.Done():
		return upstream.Refusal(m.ID, upstream.CodeInternal, "the client did not answer "+m.Method+" before the call ended")
	}
}

// notify passes a notification of the upstream call to the round in
// progress, if any (between rounds nobody listens).
func (p *park) notify(method string, params json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		p.cur.Notify(method, params)
	}
}

// attach makes relay the one the upstream call's notifications go to, for
// the round about to start: before the call runs on, so none is missed.
func (p *park) attach(relay *callRelay) {
	p.mu.Lock()
	p.cur = relay
	p.mu.Unlock()
}

// round waits for what the upstream call does next: ask for input (the
// answer is input_required), or end (its response). A round whose caller
// goes away ends the call. The round's relay (attach) is detached at its end.
func (p *park) round(ctx context.Context, id json.RawMessage) (*bus.Message, error) {
	defer func() {
		p.mu.Lock()
		p.cur = nil
		p.busy = false
		p.mu.Unlock()
	}()
	select {
	case ev := <-p.events:
		if ev.ask == nil {
			p.end()
			return ev.resp, ev.err
		}
		p.mu.Lock()
		p.rounds++
		p.pending, p.key = ev.ask, "input-"+strconv.Itoa(p.rounds)
		p.mu.Unlock()
		return p.inputRequired(id), nil
	case <-ctx.Done():
		p.end()
		return nil, bus.ContextError(ctx, p.w.up.Name)
	case <-p.ctx.Done():
		return nil, bus.ContextError(p.ctx, p.w.up.Name)
	}
}

// inputRequired is the answer that asks the caller for the pending input.
func (p *park) inputRequired(id json.RawMessage) *bus.Message {
	p.mu.Lock()
	ask, key := p.pending, p.key
	p.mu.Unlock()
	result, _ := json.Marshal(map[string]any{
		"resultType":    "input_required",
		"inputRequests": map[string]any{key: map[string]any{"method": ask.Method, "params": ask.Params}},
		"requestState":  bus.ParkState(p.w.up.Name, p.w.s2cToken, p.n, p.secret),
	})
	return &bus.Message{JSONRPC: "2.0", ID: id, Result: result}
}

// parkCall runs a stateless-era caller's call on a session-era upstream so
// that it can be parked: the upstream call runs on its own, under the
// park, and this first round answers with its result or the first
// input_required.
func (w *Worker) parkCall(ctx context.Context, l *link, env *bus.Envelope, msg *bus.Message, params json.RawMessage, relay *callRelay) (*bus.Message, error) {
	p, e := w.openPark(env, msg)
	if e != nil {
		return nil, e
	}
	if env.LogLevel != "" {
		l.syncLevel(ctx, env.LogLevel) // as dispatch does for any call
	}
	base := w.newRelay(env, nil)
	base.park = p
	p.busy = true
	p.attach(relay)
	go func() {
		defer base.Release()
		var resp *bus.Message
		err := w.guard(p.ctx, func() (err error) {
			resp, err = l.up.Call(p.ctx, msg.Method, params, base)
			return err
		})
		p.events <- parkEvent{resp: resp, err: err} // buffered: the end never waits
	}()
	return p.round(ctx, msg.ID)
}

// resumePark serves the retry of a parked call (the router sends it to this
// replica's subject, bus.ParkRef.Subject): the caller's answer goes
// upstream, and the retry gets what the call does next.
func (w *Worker) resumePark(m *nats.Msg, n string) {
	reply := bus.ReplyTo(w.nc, m.Reply)
	env, err := bus.ReadEnvelope(m.Header)
	if err != nil {
		_ = reply.Error(bus.AsError(err))
		return
	}
	msg, perr := bus.ParseMessage(m.Data)
	if perr != nil {
		_ = reply.Error(perr)
		return
	}
	if e := w.admits(env); e != nil {
		_ = reply.Error(e)
		return
	}
	p, e := w.takePark(n, &env, msg)
	if e != nil {
		_ = reply.Error(e)
		return
	}
	var answers map[string]json.RawMessage
	if raw, ok, _ := bus.Field(msg.Params, "inputResponses"); ok {
		_ = json.Unmarshal(raw, &answers)
	}
	p.mu.Lock()
	ask, key := p.pending, p.key
	p.mu.Unlock()
	answer, answered := answers[key]
	if !answered {
		// Not the answer asked for: ask again, as a server may.
		p.mu.Lock()
		p.busy = false
		p.mu.Unlock()
		_ = reply.Respond(bus.ResultResponse(msg.ID, p.inputRequired(msg.ID).Result))
		return
	}
	ctx, cancel := w.callContext(env)
	defer cancel()
	tracked := w.track(&env, msg.ID, cancel)
	defer w.untrack(env.RequestID, tracked)
	var token json.RawMessage
	if meta, ok, _ := bus.Field(msg.Params, "_meta"); ok {
		token, _, _ = bus.Field(meta, "progressToken")
	}
	if env.Stream != "" {
		relay := w.newRelay(&env, token)
		defer relay.Release() // after round, which detaches it
		p.attach(relay)
	}
	p.answers <- bus.ResultResponse(ask.ID, answer) // the call goes on
	resp, rerr := p.round(ctx, msg.ID)
	switch {
	case rerr != nil:
		_ = reply.Error(bus.AsError(rerr))
	case len(resp.Error) > 0:
		_ = reply.Respond(bus.RawErrorResponse(msg.ID, resp.Error))
	default:
		_ = reply.Respond(bus.ResultResponse(msg.ID, resp.Result))
	}
}

// takePark returns park n for a retry of env's caller, and marks a round
// in progress; anything that does not match is the same refusal, which
// tells a guesser nothing.
func (w *Worker) takePark(n string, env *bus.Envelope, msg *bus.Message) (*park, *bus.Error) {
	gone := bus.Errorf(bus.ErrInvalidParams, "requestState does not name a call of server %q that is waiting for this caller's input (it ended, or timed out): call again without it", w.up.Name)
	v, ok := w.parks.Load(n)
	ref, parked := bus.ParkedCall(msg.Params)
	if !ok || !parked || ref.N != n {
		return nil, gone
	}
	p := v.(*park)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || ref.Secret != p.secret || env.Caller.KeyID != p.keyID || msg.Method != p.method || namedIn(msg) != p.name || p.pending == nil {
		return nil, gone
	}
	if p.busy {
		return nil, bus.Errorf(bus.ErrInvalidParams, "this call's input is already being answered by another request")
	}
	p.busy = true
	return p, nil
}
