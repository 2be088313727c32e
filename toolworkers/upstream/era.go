package upstream

// Which protocol era an upstream speaks, learned once per server: MCP
// 2026-07-28 (the stateless era: no initialize, no session, the client's
// version and capabilities in every request's _meta), or a revision of the
// session era (initialize, Mcp-Session-Id). The spec's way to tell
// (basic/versioning, backward compatibility) is the probe here: POST
// server/discover in the new era's form; a DiscoverResult that lists a
// stateless-era version means the new era, anything else (a -32022 listing
// older versions only, an HTTP error, a body that is not a result) means the
// server wants initialize, and the session path takes over as before.
//
// A server that speaks both eras (its discover result lists older
// revisions too, as a dual-era server's does) is called in the caller's
// era: a 2026-07-28 caller statelessly, a 2025-11-25 caller on a session,
// where the server can still ask it for input and tell it of changes, which
// mcpbus does not bridge across eras yet. A server of the new era alone is
// called statelessly for everyone. Plan: docs/plans/mcp-2026-07-28.md,
// step 5.

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/internal/signing"
)

// Era values.
const (
	eraUnknown = ""       // not probed yet (or forgotten: probe again)
	eraModern  = "modern" // answers server/discover with a stateless-era version
	eraLegacy  = "legacy" // wants initialize and a session
)

// Era is what a worker knows of its server's protocol era, shared by all of
// the server's clients (the shared one, one per credential set, the private
// ones), so one probe serves them all. A nil *Era never probes: the client
// speaks the session era, as before the stateless era existed. Every call
// reads it, and it changes only when the server changes eras: an immutable
// state behind an atomic pointer.
type Era struct {
	state  atomic.Pointer[eraState]
	pinned bool
}

// eraState is one finding: the era, and whether a modern server keeps
// sessions for callers of older revisions too (dual).
type eraState struct {
	era  string
	dual bool
}

// PinnedEra is an Era the operator chose with spec_version: a stateless-era
// revision pins the new era, any other the session era; neither is probed.
func PinnedEra(specVersion string) *Era {
	e := &Era{pinned: true}
	era := eraLegacy
	if specVersion >= bus.FirstModernVersion {
		era = eraModern
	}
	e.state.Store(&eraState{era: era})
	return e
}

func (e *Era) load() eraState {
	if e == nil {
		return eraState{era: eraLegacy}
	}
	if s := e.state.Load(); s != nil {
		return *s
	}
	return eraState{}
}

func (e *Era) get() string { return e.load().era }

// set records what a probe or a session found (dual: a modern server
// that speaks older revisions too); a pinned era stays.
func (e *Era) set(era string, dual bool) {
	if e != nil && !e.pinned {
		e.state.Store(&eraState{era: era, dual: dual})
	}
}

// isPinned reports whether the operator chose the era (spec_version).
func (e *Era) isPinned() bool { return e != nil && e.pinned }

// sessionsToo reports whether the server, found modern, also keeps
// sessions for callers of older revisions.
func (e *Era) sessionsToo() bool { return e.load().dual }

// forget makes the next session probe again (the server changed eras: it
// refused what it used to take). A pinned era stays.
func (e *Era) forget(was string) {
	if e == nil || e.pinned {
		return
	}
	for {
		cur := e.state.Load()
		if cur == nil || cur.era != was || e.state.CompareAndSwap(cur, nil) {
			return
		}
	}
}

// Modern reports whether the server was found (or pinned) to speak the
// stateless era.
func (e *Era) Modern() bool { return e != nil && e.get() == eraModern }

// errEraChanged says a stateless-era server refused a stateless-era request
// as an unsupported version: it was redeployed in the session era.
var errEraChanged = errors.New("upstream no longer speaks the stateless era")

// pick returns the session a call made under ctx goes through: the
// stateless era's for a caller of that era, or for every caller when the
// server speaks only that era; else the initialized one. The first call of
// a server whose era nobody knows yet probes it.
func (c *streamableClient) pick(ctx context.Context) (*session, error) {
	if c.era.get() == eraUnknown {
		// The probe records the era either way (modernSession).
		if _, err := c.modernSession(ctx); err != nil && !errors.Is(err, errEraChanged) {
			return nil, err
		}
	}
	if st := c.era.load(); st.era == eraModern && (callerFrom(ctx).Modern || !st.dual) {
		return c.modernSession(ctx) // the probe's result, kept
	}
	return c.session(ctx)
}

// modernSession returns the client's discover result, asking for it once
// (concurrent callers share one probe). A server that no longer answers it
// in the new era is forgotten as modern: errEraChanged, probe again.
func (c *streamableClient) modernSession(ctx context.Context) (*session, error) {
	if s := c.disc.Load(); s != nil {
		return s, nil
	}
	select {
	case c.probeLock <- struct{}{}:
	case <-ctx.Done():
		return nil, c.classify(ctx, ctx.Err())
	}
	defer func() { <-c.probeLock }()
	if s := c.disc.Load(); s != nil {
		return s, nil
	}
	was := c.era.get()
	s, dual, ok, err := c.discover(ctx)
	switch {
	case err != nil:
		return nil, err
	case !ok && was == eraModern && c.era.isPinned():
		return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q does not answer server/discover with MCP %s, which its spec_version names", c.server, bus.FirstModernVersion)
	case !ok:
		c.era.forget(eraModern)
		if c.era.get() == eraUnknown {
			c.era.set(eraLegacy, false)
		}
		return nil, errEraChanged
	}
	if was != eraModern {
		c.log.Info("upstream speaks MCP "+bus.FirstModernVersion+": calling it without a session", "server", c.server, "sessions_too", dual)
	}
	c.era.set(eraModern, dual)
	s.ctx, s.cancel = context.WithCancel(c.base)
	c.disc.Store(s)
	if c.closed.Load() {
		c.dropModern(s)
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: the worker is shutting down", c.server)
	}
	c.listenFor(s) // listen.go
	return s, nil
}

// dropModern forgets the discover result s, if it is still the client's.
func (c *streamableClient) dropModern(s *session) {
	if c.disc.CompareAndSwap(s, nil) {
		s.end()
	}
}

// initRefused is the error of an initialize that failed with err. A server
// found to want sessions that refuses one may have moved to the stateless
// era: the era is forgotten, and the error says so to Call, which probes
// again once (errEraChanged), while transport detection still reads the
// HTTP status.
func (c *streamableClient) initRefused(err error) error {
	var se *statusError
	if c.era == nil || !errors.As(err, &se) || c.era.get() != eraLegacy || c.era.isPinned() {
		return err
	}
	c.era.forget(eraLegacy)
	return &eraChange{cause: err}
}

// eraChange is an error that is errEraChanged and wraps what caused it.
type eraChange struct{ cause error }

func (e *eraChange) Error() string        { return e.cause.Error() }
func (e *eraChange) Unwrap() error        { return e.cause }
func (e *eraChange) Is(target error) bool { return target == errEraChanged }

// discover probes the server with server/discover in the new era's form.
// It returns the modern session (ok) when the server speaks the new era
// (dual: older revisions too); ok false with no error when it answered in
// a way that means "use initialize"; an error when it could not be asked at
// all (no answer, its credential refused), which initialize would meet too.
func (c *streamableClient) discover(ctx context.Context) (s *session, dual, ok bool, err error) {
	ctx = signing.ForGateway(ctx) // what it learns serves every caller
	pending := &session{modern: true, version: bus.FirstModernVersion}
	id := c.nextID.Add(1)
	params := c.modernParams(ctx, nil)
	msg, _, err := c.post(ctx, pending, encodeRequest(id, bus.MethodServerDiscover, params), id, nil, modernHeaders(bus.MethodServerDiscover, nil))
	if err != nil {
		var se *statusError
		if errors.As(err, &se) || errors.Is(err, errEraChanged) || bus.AsError(err).Kind == bus.ErrUpstreamProtocol {
			return nil, false, false, nil
		}
		return nil, false, false, err
	}
	if len(msg.Error) > 0 {
		return nil, false, false, nil // -32601 (no such method) and the like: an older server
	}
	info, modern, dual := discoverInfo(msg.Result, c.server)
	if !modern {
		return nil, false, false, nil
	}
	pending.init = info
	return pending, dual, true, nil
}

// discoverInfo turns a DiscoverResult into the initialize result a worker
// and the router read about every upstream (protocolVersion, capabilities,
// serverInfo, instructions), and reports whether the server speaks a
// stateless-era version mcpbus knows (modern), and an older one too (dual).
//
// The capabilities pass as they are: the client keeps a listen open for the
// lists that change (listen.go) and the resources subscribed
// (listen_resources.go).
func discoverInfo(result json.RawMessage, server string) (info json.RawMessage, modern, dual bool) {
	var d struct {
		SupportedVersions []string                   `json:"supportedVersions"`
		Capabilities      map[string]json.RawMessage `json:"capabilities"`
		Instructions      string                     `json:"instructions"`
		Meta              map[string]json.RawMessage `json:"_meta"`
	}
	if json.Unmarshal(result, &d) != nil {
		return nil, false, false
	}
	for _, v := range d.SupportedVersions {
		modern = modern || slices.Contains(bus.ModernProtocolVersions, v)
		dual = dual || slices.Contains(bus.ProtocolVersions, v)
	}
	if !modern {
		return nil, false, false
	}
	caps := map[string]json.RawMessage{}
	for k, v := range d.Capabilities {
		caps[k] = v // resources.subscribe too: it is bridged (listen_resources.go)
	}
	serverInfo := d.Meta[bus.MetaServerInfo]
	if len(serverInfo) == 0 || !isJSONObject(serverInfo) {
		serverInfo, _ = json.Marshal(map[string]string{"name": server, "version": ""})
	}
	info, _ = json.Marshal(struct {
		ProtocolVersion string                     `json:"protocolVersion"`
		Capabilities    map[string]json.RawMessage `json:"capabilities"`
		ServerInfo      json.RawMessage            `json:"serverInfo"`
		Instructions    string                     `json:"instructions,omitempty"`
	}{bus.FirstModernVersion, caps, serverInfo, d.Instructions})
	return info, true, dual
}

func isJSONObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

// Caller is what a stateless-era upstream is told, in each request's _meta,
// about the client a call is made for.
type Caller struct {
	// Modern: the caller speaks the stateless era. Only such a caller is
	// served statelessly by a server that keeps sessions too.
	Modern bool
	// Caps are the client capabilities to declare, so the upstream asks for
	// input (input_required) only what the caller can answer: its own, for
	// a stateless-era caller (the result passes through) or a session-era
	// caller the worker can ask on its stream (toolworkers/mrtr.go). nil
	// declares none ({}).
	Caps json.RawMessage
	// LogLevel is the level of log messages the caller wants ("" none).
	LogLevel string
}

type callerKey struct{}

// WithCaller returns ctx carrying c, for the calls made under it.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// modernParams returns params with the stateless era's _meta triple set
// (protocol version, the caller's capabilities, mcpbus as the client, and
// the caller's log level when it has one), keeping whatever else params and
// its _meta hold (a progress token). params that are not a JSON object are
// returned as they are, for the upstream to refuse.
func (c *streamableClient) modernParams(ctx context.Context, params json.RawMessage) json.RawMessage {
	p := map[string]json.RawMessage{}
	if len(params) > 0 && string(params) != "null" {
		if json.Unmarshal(params, &p) != nil || p == nil {
			return params
		}
	}
	meta := map[string]json.RawMessage{}
	if raw, ok := p["_meta"]; ok {
		if json.Unmarshal(raw, &meta) != nil || meta == nil {
			return params
		}
	}
	caller := callerFrom(ctx)
	caps := caller.Caps
	if len(caps) == 0 || !isJSONObject(caps) {
		caps = json.RawMessage(`{}`)
	}
	meta[bus.MetaProtocolVersion], _ = json.Marshal(bus.FirstModernVersion)
	meta[bus.MetaClientCapabilities] = caps
	meta[bus.MetaClientInfo], _ = json.Marshal(map[string]string{"name": "mcpbus", "version": version.Version})
	if caller.LogLevel != "" {
		meta[bus.MetaLogLevel], _ = json.Marshal(caller.LogLevel)
	} else {
		delete(meta, bus.MetaLogLevel)
	}
	p["_meta"], _ = json.Marshal(meta)
	out, _ := json.Marshal(p)
	return out
}
