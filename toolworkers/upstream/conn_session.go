package upstream

// connSession is one initialized upstream session on one connection of a
// connClient: its pending calls, the reader that dispatches what the
// upstream sends, and the answers to the upstream's own requests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connSession is one initialized session on one connection.
type connSession struct {
	c       *connClient
	conn    mcp.Connection
	release func()
	init    json.RawMessage // the upstream's initialize result, verbatim

	lost atomic.Bool // the connection broke (as opposed to being closed by us)

	mu     sync.Mutex
	dead   bool
	calls  map[int64]*pendingCall
	tokens map[string]*pendingCall // by progress token key
}

// pendingCall is one request waiting for its response.
type pendingCall struct {
	id     int64
	token  string // progress token key, "" if none
	result chan callResult
	ctx    context.Context // the call's; bounds requests relayed for it

	mu       sync.Mutex // held while notify runs, so Call never returns under it
	relay    Relay
	finished bool
}

type callResult struct {
	msg *bus.Message
	err error
}

func (s *connSession) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// call sends a request on this session and waits for the answer. cancellable
// says whether to tell the upstream (notifications/cancelled) when ctx ends
// first; initialize must not be cancelled that way.
func (s *connSession) call(ctx context.Context, method string, params json.RawMessage, r Relay, cancellable bool) (*bus.Message, error) {
	r = relayOr(r)
	c := s.c
	pc := &pendingCall{
		id:     c.nextID.Add(1),
		token:  requestProgressToken(params),
		result: make(chan callResult, 1),
		ctx:    ctx,
		relay:  r,
	}
	defer pc.finish()

	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return nil, c.lostErr()
	}
	s.calls[pc.id] = pc
	if pc.token != "" {
		if _, taken := s.tokens[pc.token]; !taken {
			s.tokens[pc.token] = pc
		}
	}
	s.mu.Unlock()

	rid, _ := jsonrpc.MakeID(float64(pc.id)) // an int64 id; the package exports no Int64ID
	req := &jsonrpc.Request{ID: rid, Method: method, Params: params}
	if err := s.conn.Write(ctx, req); err != nil {
		s.forget(pc)
		if ctx.Err() != nil {
			return nil, bus.ContextError(ctx, c.server)
		}
		e := c.classify(err)
		var se *httpStatusError
		if errors.As(err, &se) && se.code >= 400 && se.code < 500 && se.code != http.StatusNotFound {
			// The upstream refused this one message (an SSE server checks
			// methods and params before accepting a POST); the session is fine.
			return nil, e
		}
		// Otherwise the transport cannot be trusted with the session (a
		// broken pipe, a forgotten session): start over on the next call.
		s.lost.Store(true)
		s.fail(e, err)
		return nil, e
	}
	select {
	case r := <-pc.result:
		return r.msg, r.err
	case <-ctx.Done():
		if s.forget(pc) && cancellable {
			s.sendCancel(pc.id, ctx.Err())
		}
		return nil, bus.ContextError(ctx, c.server)
	}
}

// forget removes pc from the session and reports whether it was still pending.
func (s *connSession) forget(pc *pendingCall) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.calls[pc.id]; !ok {
		return false
	}
	delete(s.calls, pc.id)
	if pc.token != "" && s.tokens[pc.token] == pc {
		delete(s.tokens, pc.token)
	}
	return true
}

// sendCancel tells the upstream, best effort and in the background, that the
// caller gave up on request id.
func (s *connSession) sendCancel(id int64, reason error) {
	params, _ := json.Marshal(map[string]any{"requestId": id, "reason": reason.Error()})
	s.background(&jsonrpc.Request{Method: "notifications/cancelled", Params: params})
}

// background writes msg without holding up the caller or the reader.
func (s *connSession) background(msg jsonrpc.Message) {
	c := s.c
	c.spawn(func() {
		ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
		defer cancel()
		if err := s.conn.Write(ctx, msg); err != nil {
			c.log.Debug("write to upstream failed", "server", c.server, "transport", c.dial.transport(), "err", bus.NetworkReason(err))
		}
	})
}

// finish marks the call returned: no notification is delivered after this.
func (pc *pendingCall) finish() {
	pc.mu.Lock()
	pc.finished = true
	pc.mu.Unlock()
}

func (pc *pendingCall) deliver(method string, params json.RawMessage) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.finished {
		pc.relay.Notify(method, params)
	}
}

// heldRelay returns the call's relay, held for a request relayed after the
// call may have returned; ok is false once the call has finished.
func (pc *pendingCall) heldRelay() (r Relay, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.finished {
		return nil, false
	}
	pc.relay.Hold()
	return pc.relay, true
}

// only returns the one call in flight, or nil when there are none or several.
func (s *connSession) only() *pendingCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) != 1 {
		return nil
	}
	for _, pc := range s.calls {
		return pc
	}
	return nil
}

// fail ends the session: the connection is closed, the transport released and
// every pending call fails with e (nil: "connection lost"). cause, if any, is
// logged (without URLs).
func (s *connSession) fail(e *bus.Error, cause error) {
	c := s.c
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	calls := s.calls
	s.calls, s.tokens = nil, nil
	s.mu.Unlock()

	if c.cur.CompareAndSwap(s, nil) && c.events != nil && c.base.Err() == nil {
		c.events.SessionLost()
	}
	_ = s.conn.Close()
	if s.release != nil {
		s.release()
	}
	if e == nil {
		e = c.lostErr()
	}
	if cause != nil {
		c.log.Warn("upstream connection lost", "server", c.server, "transport", c.dial.transport(), "pending_calls", len(calls), "err", bus.NetworkReason(cause))
	}
	for _, pc := range calls {
		pc.result <- callResult{err: e}
	}
}

// readLoop reads messages until the connection breaks.
func (s *connSession) readLoop() {
	for {
		msg, err := s.conn.Read(context.Background())
		if err != nil {
			if !s.isDead() {
				s.lost.Store(true)
				s.fail(nil, err)
			}
			return
		}
		switch m := msg.(type) {
		case *jsonrpc.Response:
			s.dispatch(m)
		case *jsonrpc.Request:
			if m.IsCall() {
				s.answer(m)
			} else {
				s.notification(m)
			}
		}
	}
}

// dispatch hands a response to the call waiting for its id.
func (s *connSession) dispatch(r *jsonrpc.Response) {
	id, ok := r.ID.Raw().(int64)
	if !ok {
		s.c.log.Debug("dropped upstream response with a foreign id", "server", s.c.server)
		return
	}
	s.mu.Lock()
	pc := s.calls[id]
	if pc != nil {
		delete(s.calls, id)
		if pc.token != "" && s.tokens[pc.token] == pc {
			delete(s.tokens, pc.token)
		}
	}
	s.mu.Unlock()
	if pc == nil {
		s.c.log.Debug("dropped upstream response to no pending call", "server", s.c.server, "id", id)
		return
	}
	pc.result <- callResult{msg: responseMessage(id, r)}
}

// responseMessage turns a go-sdk response into a bus.Message: the result as
// it came, or the error re-encoded with its code, message and data.
func responseMessage(id int64, r *jsonrpc.Response) *bus.Message {
	m := &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(strconv.FormatInt(id, 10))}
	if r.Error != nil {
		m.Error = wireErrorJSON(r.Error)
		return m
	}
	m.Result = r.Result
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("null")
	}
	return m
}

func wireErrorJSON(err error) json.RawMessage {
	var obj struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	}
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		obj.Code, obj.Message, obj.Data = we.Code, we.Message, we.Data
	} else {
		obj.Code, obj.Message = jsonrpc.CodeInternalError, err.Error()
	}
	raw, mErr := json.Marshal(obj)
	if mErr != nil { // data was not valid JSON
		obj.Data = nil
		raw, _ = json.Marshal(obj)
	}
	return raw
}

// answer replies to a request from the upstream: ping succeeds; anything else
// goes, by the attribution rule, to the one call in flight or to the session's
// events, which relay it to the client; the answer is written in the
// background.
func (s *connSession) answer(m *jsonrpc.Request) {
	if m.Method == bus.MethodPing {
		s.background(&jsonrpc.Response{ID: m.ID, Result: json.RawMessage(`{}`)})
		return
	}
	c := s.c
	msg, ok := busMessage(m)
	if !ok {
		s.background(&jsonrpc.Response{ID: m.ID, Error: &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "mcpbus could not read the request"}})
		return
	}
	var handle func() []byte
	if pc := s.only(); pc != nil {
		if r, ok := pc.heldRelay(); ok {
			handle = func() []byte {
				defer r.Release()
				return r.Request(pc.ctx, msg)
			}
		}
	}
	if handle == nil && c.events != nil {
		handle = func() []byte { return c.events.ServerRequest(c.base, msg) }
	}
	if handle == nil {
		handle = func() []byte {
			return Refusal(msg.ID, CodeMethodNotFound, "the client cannot receive "+m.Method+": no single call or client on this upstream session can answer it")
		}
	}
	c.spawn(func() {
		reply := handle()
		var resp jsonrpc.Response
		var wire struct {
			Result json.RawMessage `json:"result"`
			Error  *jsonrpc.Error  `json:"error"`
		}
		if json.Unmarshal(reply, &wire) != nil {
			return
		}
		resp.ID, resp.Result = m.ID, wire.Result
		if wire.Error != nil {
			resp.Error = wire.Error
		}
		ctx, cancel := context.WithTimeout(c.base, 10*time.Second)
		defer cancel()
		if err := s.conn.Write(ctx, &resp); err != nil {
			c.log.Debug("write to upstream failed", "server", c.server, "transport", c.dial.transport(), "err", bus.NetworkReason(err))
		}
	})
}

// busMessage re-encodes a go-sdk request as a bus message (its id as on the wire).
func busMessage(m *jsonrpc.Request) (*bus.Message, bool) {
	data, err := jsonrpc.EncodeMessage(m)
	if err != nil {
		return nil, false
	}
	var msg bus.Message
	if json.Unmarshal(data, &msg) != nil {
		return nil, false
	}
	return &msg, true
}

// notification routes notifications/progress to the call that carries its
// token, and the rest by the attribution rule.
func (s *connSession) notification(m *jsonrpc.Request) {
	if m.Method == "notifications/progress" {
		var p struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		}
		if json.Unmarshal(m.Params, &p) == nil {
			if key := bus.CanonicalID(p.ProgressToken); key != "" {
				s.mu.Lock()
				pc := s.tokens[key]
				s.mu.Unlock()
				if pc != nil {
					pc.deliver(m.Method, m.Params)
					return
				}
			}
		}
	}
	switch {
	case s.c.events != nil && sessionWide(m.Method):
		s.c.events.SessionNotification(m.Method, m.Params)
		return
	case m.Method == "notifications/message":
		if pc := s.only(); pc != nil {
			pc.deliver(m.Method, m.Params)
			return
		}
		if s.c.events != nil {
			s.c.events.SessionNotification(m.Method, m.Params)
			return
		}
	}
	s.c.log.Debug("dropped upstream notification", "server", s.c.server, "transport", s.c.dial.transport(), "method", m.Method)
}

// requestProgressToken returns the key of params._meta.progressToken, or "".
func requestProgressToken(params json.RawMessage) string {
	if !bytes.Contains(params, []byte(`"progressToken"`)) {
		return ""
	}
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return bus.CanonicalID(p.Meta.ProgressToken)
}
