package toolworkers

// Pinned tool definitions (bus/pins.go, docs/PINNING.md), on a server with
// tool_pinning withhold or flag. Every tools/list answer is checked against
// the pins: a tool seen for the first time is pinned (KV Create: replicas
// racing agree on one), a tool whose definition differs from its pin moves
// the pin to pending (KV Update on the revision read: the first replica
// wins, the others read its record). A tool whose definition is not the
// pinned one is left out of the answer (withhold) or marked (flag); a
// tools/call of a tool whose pin is pending is refused (withhold). Each
// replica follows its server's pins (a subscription to their subjects, then
// a MSG.GET of the changed key), so an approval or a change another replica
// saw holds here too; a change of status is announced as the server's
// tools/list_changed, so routers and clients list again. With tool_pinning
// off the worker has no toolPins and pays one nil check per answer.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxPinsKnown bounds the pins a replica keeps per server; past it, a tool
// with no pin is looked up again each time instead of being remembered.
const maxPinsKnown = 4096

// pinsTimeout bounds the KV work of one answer.
const pinsTimeout = 5 * time.Second

// pinMeta is the _meta key a flagged tool carries.
const pinMeta = "io.mcpbus/pin"

type toolPins struct {
	w      *Worker
	server string
	mode   string // bus.PinningWithhold or bus.PinningFlag
	js     jetstream.JetStream

	mu    sync.Mutex
	kv    jetstream.KeyValue
	known map[string]pinState // by tool name
	// defs are the definitions read from listed tools, by the SHA-256 of
	// the tool's bytes as listed: a list answered again (a cache hit) is
	// not parsed again.
	defs map[[32]byte]toolDef

	changed chan pinChange // tools whose pin changed on the bus
	stop    chan struct{}
	sub     *nats.Subscription
}

// toolDef is a listed tool's name, canonical definition and its hash.
type toolDef struct {
	name, hash string
	def        json.RawMessage
}

// definition reads a listed tool (bus.ToolDefinition), once per distinct bytes.
func (p *toolPins) definition(t json.RawMessage) (toolDef, error) {
	sum := sha256.Sum256(t)
	p.mu.Lock()
	d, ok := p.defs[sum]
	p.mu.Unlock()
	if ok {
		return d, nil
	}
	name, def, hash, err := bus.ToolDefinition(t)
	if err != nil {
		return toolDef{}, err
	}
	d = toolDef{name: name, hash: hash, def: def}
	p.mu.Lock()
	if len(p.defs) >= maxPinsKnown {
		clear(p.defs)
	}
	p.defs[sum] = d
	p.mu.Unlock()
	return d, nil
}

// pinState is what a replica knows of one tool's pin: pin nil when it has
// none.
type pinState struct {
	rev uint64
	pin *bus.ToolPin
}

func newToolPins(w *Worker, mode string, js jetstream.JetStream) *toolPins {
	if mode == "" || mode == bus.PinningOff {
		return nil
	}
	return &toolPins{w: w, server: w.up.Name, mode: mode, js: js, known: map[string]pinState{}, defs: map[[32]byte]toolDef{}}
}

// follow subscribes to the server's pin subjects and applies what changes
// until end.
func (p *toolPins) follow() error {
	if p == nil {
		return nil
	}
	p.changed, p.stop = make(chan pinChange, 256), make(chan struct{})
	prefix := bus.KVSubject(bus.BucketToolPins, p.server+".")
	sub, err := p.w.nc.Subscribe(bus.KVSubject(bus.BucketToolPins, bus.PinKeys(p.server)), func(m *nats.Msg) {
		enc := strings.TrimPrefix(m.Subject, prefix)
		name, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil || len(name) == 0 {
			return
		}
		p.push(pinChange{tool: string(name)})
	})
	if err != nil {
		return err
	}
	p.sub = sub
	go p.apply()
	return nil
}

// pinChange is a tool whose pin to read again, and how many times it was
// read without finding a newer revision.
type pinChange struct {
	tool    string
	attempt int
}

// pinRefetchAfter are the waits before reading a pin again that had not
// advanced: a subscriber may hear of a write before the stream stored it
// (bus/kvfollow.go does the same).
var pinRefetchAfter = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond}

func (p *toolPins) push(c pinChange) {
	select {
	case p.changed <- c:
	default:
		// Too many at once: forget them all; each is read again when next needed.
		p.mu.Lock()
		clear(p.known)
		p.mu.Unlock()
	}
}

func (p *toolPins) end() {
	if p == nil || p.sub == nil {
		return
	}
	_ = p.sub.Unsubscribe()
	close(p.stop)
}

// apply reads each changed pin and, when its status or approved hash moved,
// announces the server's tool list as changed.
func (p *toolPins) apply() {
	for {
		select {
		case <-p.stop:
			return
		case c := <-p.changed:
			tool := c.tool
			ctx, cancel := context.WithTimeout(context.Background(), pinsTimeout)
			p.mu.Lock()
			before, had := p.known[tool]
			p.mu.Unlock()
			after, err := p.read(ctx, tool)
			cancel()
			if err != nil {
				p.mu.Lock()
				delete(p.known, tool) // read again when next needed
				p.mu.Unlock()
				p.w.log.Info("could not read a changed tool pin", "tool", tool, "err", err)
				continue
			}
			if had && after.rev <= before.rev && c.attempt < len(pinRefetchAfter) {
				next := pinChange{tool: tool, attempt: c.attempt + 1}
				time.AfterFunc(pinRefetchAfter[c.attempt], func() {
					select {
					case <-p.stop:
					default:
						p.push(next)
					}
				})
				continue
			}
			// A first sight (no pin to pinned) changes no list.
			firstSight := before.pin == nil && after.pin != nil && after.pin.Status == bus.PinPinned
			if !firstSight && pinMoved(before.pin, after.pin) {
				p.w.changes.publish("notifications/tools/list_changed", nil)
			}
		}
	}
}

func pinMoved(a, b *bus.ToolPin) bool {
	if a == nil || b == nil {
		return a != b
	}
	return a.Status != b.Status || a.Hash != b.Hash || a.PendingHash != b.PendingHash
}

// bucket opens the pins bucket (the registry makes it).
func (p *toolPins) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kv != nil {
		return p.kv, nil
	}
	if p.js == nil {
		return nil, errors.New("tool pinning needs JetStream")
	}
	kv, err := p.js.KeyValue(ctx, bus.BucketToolPins)
	if err != nil {
		return nil, err
	}
	p.kv = kv
	return kv, nil
}

// read fetches tool's pin from the bucket and keeps it (unless an entry of
// a later revision is kept already).
func (p *toolPins) read(ctx context.Context, tool string) (pinState, error) {
	kv, err := p.bucket(ctx)
	if err != nil {
		return pinState{}, err
	}
	var st pinState
	e, err := kv.Get(ctx, bus.PinKey(p.server, tool))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return pinState{}, err
	default:
		var pin bus.ToolPin
		if err := json.Unmarshal(e.Value(), &pin); err != nil {
			return pinState{}, err
		}
		st = pinState{rev: e.Revision(), pin: &pin}
	}
	return p.keep(tool, st), nil
}

// keep remembers st unless a later revision is known; it returns what is kept.
func (p *toolPins) keep(tool string, st pinState) pinState {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.known[tool]; ok && old.rev > st.rev {
		return old
	}
	if st.pin == nil && len(p.known) >= maxPinsKnown {
		return st
	}
	p.known[tool] = st
	return st
}

// state is tool's pin, from memory or the bucket.
func (p *toolPins) state(ctx context.Context, tool string) (pinState, error) {
	p.mu.Lock()
	st, ok := p.known[tool]
	p.mu.Unlock()
	if ok {
		return st, nil
	}
	return p.read(ctx, tool)
}

// refuses answers a tools/call of tool: an error when its pin is pending
// (withhold), or cannot be read.
func (p *toolPins) refuses(tool string) *bus.Error {
	if p == nil || p.mode != bus.PinningWithhold {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pinsTimeout)
	defer cancel()
	st, err := p.state(ctx, tool)
	if err != nil {
		p.w.log.Warn("tool pin unreadable; the call is refused", "tool", tool, "err", err)
		return bus.Errorf(bus.ErrServiceUnavailable, "tool %q on server %q: its pinned definition could not be read (tool_pinning: withhold), so it is not called", tool, p.server)
	}
	if st.pin != nil && st.pin.Status == bus.PinPending {
		return pendingError(p.server, tool)
	}
	return nil
}

func pendingError(server, tool string) *bus.Error {
	return bus.Errorf(bus.ErrToolPending, "tool %q on server %q changed since it was pinned and is withheld until an admin approves the change: "+
		"POST /v1/mcp/server/%s/tool-pins/%s/approve (or `mcpbus servers approve %s %s`); GET .../tool-pins/%s shows what changed",
		tool, server, server, tool, server, tool, tool)
}

// list checks every tool of a tools/list result against the pins, pinning
// new ones and marking changed ones pending, and answers the result with
// changed tools left out (withhold) or marked (flag).
func (p *toolPins) list(result json.RawMessage) json.RawMessage {
	var r map[string]json.RawMessage
	if json.Unmarshal(result, &r) != nil {
		return result
	}
	var tools []json.RawMessage
	if json.Unmarshal(r["tools"], &tools) != nil {
		return result
	}
	ctx, cancel := context.WithTimeout(context.Background(), pinsTimeout)
	defer cancel()
	kept := make([]json.RawMessage, 0, len(tools))
	touched := false
	for _, t := range tools {
		d, err := p.definition(t)
		name, ok := d.name, false
		if err == nil {
			ok, err = p.check(ctx, d.name, d.def, d.hash)
		}
		if err != nil {
			p.w.log.Warn("tool pin not checked; the tool is treated as changed", "tool", name, "err", err)
		}
		switch {
		case ok:
			kept = append(kept, t)
		case p.mode == bus.PinningFlag:
			kept = append(kept, flagTool(t))
			touched = true
		default:
			touched = true
		}
	}
	if !touched {
		return result
	}
	r["tools"], _ = json.Marshal(kept)
	out, err := json.Marshal(r)
	if err != nil {
		return result
	}
	return out
}

// check reconciles one listed tool with its pin; ok says its definition is
// the approved one.
func (p *toolPins) check(ctx context.Context, name string, def json.RawMessage, hash string) (ok bool, err error) {
	for range 4 { // a lost race re-reads and tries again
		st, err := p.state(ctx, name)
		if err != nil {
			return false, err
		}
		pin, ev, prev := nextPin(st.pin, p.server, name, def, hash)
		if pin == nil {
			return approved(st.pin, hash), nil
		}
		rev, err := p.write(ctx, name, st, pin)
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
			p.mu.Lock()
			delete(p.known, name)
			p.mu.Unlock()
			continue
		}
		if err != nil {
			return false, err
		}
		p.keep(name, pinState{rev: rev, pin: pin})
		p.event(bus.PinEvent{Event: ev, Server: p.server, Tool: name, Hash: hash, PreviousHash: prev, At: time.Now().UTC()})
		return approved(pin, hash), nil
	}
	return false, errors.New("the pin kept changing under this replica")
}

// approved says a tool listed with hash may be shown as it is: its pin is
// that definition and no change of it waits for approval. (A replica whose
// list is older than another's may list the approved definition while the
// pin is pending: it withholds it too, and does not undo the pending state;
// an admin approves or rejects the change.)
func approved(pin *bus.ToolPin, hash string) bool {
	return pin.Hash == hash && pin.Status != bus.PinPending
}

// nextPin is the pin to write for a tool listed with def (nil: nothing to
// write), the event it makes and the hash it replaces: a first sight is
// pinned; a definition that is neither the pinned one nor the pending one
// becomes the pending one.
func nextPin(cur *bus.ToolPin, server, name string, def json.RawMessage, hash string) (next *bus.ToolPin, event, prev string) {
	now := time.Now().UTC()
	switch {
	case cur == nil:
		return &bus.ToolPin{Server: server, Tool: name, Status: bus.PinPinned, Hash: hash, Definition: def, PinnedAt: now}, bus.PinEventPinned, ""
	case cur.Hash != hash && (cur.Status != bus.PinPending || cur.PendingHash != hash):
		n := *cur
		n.Status, n.PendingHash, n.PendingDefinition, n.PendingSince = bus.PinPending, hash, def, now
		return &n, bus.PinEventPending, cur.Hash
	}
	return nil, "", ""
}

func (p *toolPins) write(ctx context.Context, name string, st pinState, pin *bus.ToolPin) (uint64, error) {
	kv, err := p.bucket(ctx)
	if err != nil {
		return 0, err
	}
	v, err := json.Marshal(pin)
	if err != nil {
		return 0, err
	}
	key := bus.PinKey(p.server, name)
	if st.pin == nil {
		return kv.Create(ctx, key, v)
	}
	return kv.Update(ctx, key, v, st.rev)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// event announces a pin change (for the audit stream), best effort.
func (p *toolPins) event(e bus.PinEvent) {
	data, _ := json.Marshal(e)
	if err := p.w.nc.Publish(bus.PinEventSubject(p.server), data); err != nil {
		p.w.log.Debug("pin event not published", "err", err)
	}
	p.w.log.Info("tool pin changed", "event", e.Event, "tool", e.Tool, "hash", e.Hash, "previous_hash", e.PreviousHash)
}

// flagTool marks a listed tool whose definition is not the approved one:
// _meta["io.mcpbus/pin"] and a note before its description.
func flagTool(t json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(t, &m) != nil {
		return t
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(m["_meta"], &meta)
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[pinMeta], _ = json.Marshal("changed, not approved")
	m["_meta"], _ = json.Marshal(meta)
	var desc string
	_ = json.Unmarshal(m["description"], &desc)
	m["description"], _ = json.Marshal(strings.TrimSpace("[mcpbus: this tool's definition changed and an admin has not approved the change] " + desc))
	out, err := json.Marshal(m)
	if err != nil {
		return t
	}
	return out
}
