package router

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

type initializeParams struct {
	ProtocolVersion string `json:"protocolVersion"`
}

type upstreamInfo struct {
	Capabilities json.RawMessage `json:"capabilities"`
	Instructions string          `json:"instructions,omitempty"`
}

type initializeResult struct {
	ProtocolVersion string          `json:"protocolVersion"`
	Capabilities    json.RawMessage `json:"capabilities"`
	ServerInfo      serverInfo      `json:"serverInfo"`
	Instructions    string          `json:"instructions,omitempty"`
}

type serverInfo struct {
	Name    string `json:"name"`
	Title   string `json:"title,omitempty"`
	Version string `json:"version"`
}

// fallbackCapabilities are advertised when the upstream cannot be asked: tools
// only, so a client can still connect and get a clear error on its first call.
var fallbackCapabilities = json.RawMessage(`{"tools":{}}`)

// initialize answers the client itself: it negotiates the protocol version and
// advertises the selected upstream's capabilities (everything is forwarded to a
// single server, so its capabilities are what the client can use).
func (r *Router) initialize(ctx context.Context, env bus.Envelope, msg *bus.Message, s bus.ServerSpec) ([]byte, *bus.Error) {
	version, e := negotiate(msg)
	if e != nil {
		return nil, e
	}
	m := r.infoOne(ctx, env, s, msg.Method)
	res := initializeResult{
		ProtocolVersion: version,
		Capabilities:    m.sessionCaps(), // tasks.go
		ServerInfo:      m.server,
		Instructions:    withSearchNote(env, m.instructions),
	}
	out, _ := json.Marshal(res)
	return bus.ResultResponse(msg.ID, out), nil
}

// infoOne is what mcpbus tells a client of one server about itself: that
// server's capabilities and instructions, or tools only when the upstream
// cannot be asked.
func (r *Router) infoOne(ctx context.Context, env bus.Envelope, s bus.ServerSpec, method string) mergedInfo {
	m := mergedInfo{
		caps:   fallbackCapabilities,
		server: serverInfo{Name: "mcpbus", Title: "mcpbus: " + s.Prefix(), Version: r.o.Version},
		tasks:  len(s.Tasks) > 0,
	}
	info, err := r.upstreamInfo(ctx, env, s)
	if err != nil {
		r.log.Warn(method+": upstream capabilities unavailable; advertising tools only",
			"server", s.Name, "request_id", env.RequestID, "err", err.Message)
		return m
	}
	if len(info.Capabilities) > 0 {
		m.caps = info.Capabilities
	}
	m.instructions = info.Instructions
	return m
}

func (r *Router) upstreamInfo(ctx context.Context, env bus.Envelope, s bus.ServerSpec) (upstreamInfo, *bus.Error) {
	if e := bus.DrainedError(s); e != nil {
		return upstreamInfo{}, e // a session may open; its calls get this error
	}
	limit := min(r.o.InfoTimeout, bus.CallTimeout(s))
	deadline := time.Now().Add(limit)
	env.Forward = bus.ForwardFor(env.Forward, s, r.cache.Names())
	h := env.Header()
	h[bus.HeaderDeadline] = []string{formatMillis(deadline)}
	toWorker(ctx, s.Name, h)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(500*time.Millisecond))
	defer cancel()
	// With liveness, so a lost request or answer costs a second, not
	// InfoTimeout and the upstream's capabilities.
	reply, err := r.workers.Request(ctx, &nats.Msg{Subject: bus.ToolInfo(s.Name), Header: h})
	if err != nil {
		return upstreamInfo{}, bus.WorkerError(s, limit, err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return upstreamInfo{}, e
	}
	var info upstreamInfo
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		return upstreamInfo{}, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q sent an unreadable initialize result", s.Name)
	}
	return info, nil
}

// negotiate picks the protocol version of an initialize: the client's, if
// mcpbus speaks it in the session era, else the latest it does (never a
// stateless-era one: those have no initialize).
func negotiate(msg *bus.Message) (string, *bus.Error) {
	var p initializeParams
	if err := json.Unmarshal(msg.Params, &p); err != nil {
		return "", bus.Errorf(bus.ErrInvalidParams, "initialize: params must be an object with protocolVersion")
	}
	if !bus.SupportedProtocolVersion(p.ProtocolVersion) {
		return bus.LatestProtocolVersion, nil
	}
	return p.ProtocolVersion, nil
}

func formatMillis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// initializeAll answers initialize for an aggregation: the protocol version
// negotiated as for one server, and the union of the servers' capabilities
// (infoAll).
func (r *Router) initializeAll(ctx context.Context, a *agg, msg *bus.Message) ([]byte, *bus.Error) {
	version, e := negotiate(msg)
	if e != nil {
		return nil, e
	}
	m := r.infoAll(ctx, a, msg.Method)
	res := initializeResult{
		ProtocolVersion: version,
		Capabilities:    m.sessionCaps(), // tasks.go
		ServerInfo:      m.server,
		Instructions:    withSearchNote(a.env, m.instructions),
	}
	out, _ := json.Marshal(res)
	return bus.ResultResponse(msg.ID, out), nil
}

// mergedInfo is what an aggregation tells a client about itself.
type mergedInfo struct {
	caps         json.RawMessage
	instructions string
	server       serverInfo
	// tasks: the gateway runs tasks for one of the servers (tasks.go).
	tasks bool
}

// infoAll asks every server of an aggregation for its capabilities and
// instructions, in parallel, each bounded by InfoTimeout (a server that does
// not answer is logged and left out), and merges them: the union of the
// capabilities, the instructions each under its server's prefix.
func (r *Router) infoAll(ctx context.Context, a *agg, method string) mergedInfo {
	infos := make([]*upstreamInfo, len(a.servers))
	var wg sync.WaitGroup
	for i, s := range a.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := r.upstreamInfo(ctx, a.env, s)
			if err != nil {
				r.log.Warn(method+": upstream capabilities unavailable; the server is not counted in the merged capabilities",
					"server", s.Name, "request_id", a.env.RequestID, "err", err.Message)
				return
			}
			infos[i] = &info
		}()
	}
	wg.Wait()
	prefixes := make([]string, len(a.servers))
	var caps []json.RawMessage
	var instructions []string
	for i, s := range a.servers {
		prefixes[i] = s.Prefix()
		if infos[i] == nil {
			continue
		}
		caps = append(caps, infos[i].Capabilities)
		if infos[i].Instructions != "" {
			instructions = append(instructions, s.Prefix()+": "+infos[i].Instructions)
		}
	}
	tasks := false
	for _, s := range a.servers {
		tasks = tasks || len(s.Tasks) > 0
	}
	return mergedInfo{
		tasks:        tasks,
		caps:         mergeCapabilities(caps),
		instructions: strings.Join(instructions, "\n\n"),
		server:       serverInfo{Name: "mcpbus", Title: "mcpbus: " + strings.Join(prefixes, ", "), Version: r.o.Version},
	}
}
