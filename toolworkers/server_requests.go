package toolworkers

// Server-to-client requests (sampling/createMessage, elicitation/create,
// roots/list, ...) travel from the upstream to the downstream client and back:
//
//  1. The upstream sends one on a call's SSE stream (relayed to that call's
//     stream subject) or on a private session's GET stream (relayed to the
//     downstream session's subject). A request the client did not declare
//     the capability for is refused at once (-32601), as is one with nowhere
//     to go.
//  2. Its id becomes bus.ServerRequestID(server, token, n): token names this
//     worker replica, so the client's answer, POSTed to any ingress, comes
//     back here on bus.ServerRequestSubjects(server, token).
//  3. It is sent as a NATS request: the ingress acknowledges once it has
//     written it to the client's stream. No responders, or no ack within
//     bus.DeliveryAckTimeout, means the client cannot be reached: the
//     upstream gets an error at once instead of waiting for nothing.
//  4. The answer must carry the envelope (session and key) of the client that
//     was asked; anything else is ignored and logged. That caller must still
//     be able to see the server from its IP class and use it with its key
//     (checked on every message that crosses to the upstream): if not, the
//     upstream gets an error saying so. The upstream's id is put back and the
//     answer POSTed upstream in the same session.
//  5. If the call ends (or, for a GET-stream request, the server's timeout
//     passes) first, the upstream gets an error and the client a
//     notifications/cancelled for the request.

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
	"github.com/nats-io/nats.go"
)

// s2cTarget is where a server-to-client request goes and who may answer it.
type s2cTarget struct {
	subject   string // stream or session subject; "" when there is none
	session   string
	keyID     string
	caps      json.RawMessage
	requestID string // the call that caused it, for logs ("" for GET-stream requests)
	// noStream says why subject is empty, for the refusal.
	noStream string
}

// s2cWait is one relayed request waiting for the client's answer.
type s2cWait struct {
	session, keyID string
	answer         chan *nats.Msg // buffered 1: the first valid answer
}

// capabilityFor names the client capability a server-to-client request needs
// ("" for methods that need none).
func capabilityFor(method string) string {
	switch method {
	case "sampling/createMessage":
		return "sampling"
	case "elicitation/create":
		return "elicitation"
	case "roots/list":
		return "roots"
	}
	return ""
}

// hasCapability reports whether capabilities declare name (present and not null).
func hasCapability(caps json.RawMessage, name string) bool {
	if len(caps) == 0 || !strings.Contains(string(caps), `"`+name+`"`) {
		return false
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(caps, &c) != nil {
		return false
	}
	v, ok := c[name]
	return ok && string(v) != "null"
}

// privateCaps is bus.PrivateCapabilities without a parse for capabilities
// that cannot name any of them (the common "{}").
func privateCaps(caps json.RawMessage) bool {
	if len(caps) <= 2 {
		return false
	}
	s := string(caps)
	if !strings.Contains(s, `"sampling"`) && !strings.Contains(s, `"elicitation"`) && !strings.Contains(s, `"roots"`) {
		return false
	}
	return bus.PrivateCapabilities(caps)
}

// relayServerRequest relays m to the client at t and returns the response to
// send upstream (the client's answer, or an error), with m's id.
func (w *Worker) relayServerRequest(ctx context.Context, t s2cTarget, m *bus.Message) []byte {
	if cap := capabilityFor(m.Method); cap != "" && !hasCapability(t.caps, cap) {
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+": it did not declare the "+cap+" capability")
	}
	if t.subject == "" {
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+": "+t.noStream)
	}
	n := w.s2cSeq.Add(1)
	key := strconv.FormatUint(n, 10)
	id := bus.ServerRequestID(w.up.Name, w.s2cToken, n)
	wait := &s2cWait{session: t.session, keyID: t.keyID, answer: make(chan *nats.Msg, 1)}
	w.s2cWaits.Store(key, wait)
	defer w.s2cWaits.Delete(key)

	idJSON, _ := json.Marshal(id)
	body := encodeRawRequest(idJSON, m.Method, m.Params)
	ackCtx, cancel := context.WithTimeout(ctx, bus.DeliveryAckTimeout)
	ack, err := w.nc.RequestMsgWithContext(ackCtx, w.toClient(t.subject, body))
	cancel()
	if err == nil {
		if e := bus.ReplyError(ack); e != nil {
			// The ingress refused to deliver it (its caller may not see
			// this server any more): say so upstream at once.
			w.log.Info("server-to-client request refused by the client's ingress", "request_id", t.requestID, "method", m.Method, "reason", e.Message)
			return upstream.Refusal(m.ID, upstream.CodeInternal, "the client cannot receive "+m.Method+": "+e.Message)
		}
	}
	if err != nil {
		reason := "its stream is gone (no ingress holds it)"
		switch {
		case errors.Is(err, nats.ErrNoResponders):
		case ctx.Err() != nil:
			reason = "the call ended first"
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			reason = "its stream did not acknowledge delivery within " + bus.DeliveryAckTimeout.String()
		default:
			reason = "delivery failed: " + err.Error()
		}
		w.log.Info("server-to-client request not delivered", "request_id", t.requestID, "method", m.Method, "reason", reason)
		return upstream.Refusal(m.ID, upstream.CodeInternal, "the client cannot receive "+m.Method+": "+reason)
	}
	select {
	case a := <-wait.answer:
		var resp bus.Message
		if json.Unmarshal(a.Data, &resp) != nil || !resp.IsResponse() {
			return upstream.Refusal(m.ID, upstream.CodeInternal, "the client answered "+m.Method+" with something that is not a JSON-RPC response")
		}
		if len(resp.Error) > 0 {
			return bus.RawErrorResponse(m.ID, resp.Error)
		}
		result := resp.Result
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		return bus.ResultResponse(m.ID, result)
	case <-ctx.Done():
		// Tell the client to stop asking its user; best effort.
		p, _ := json.Marshal(map[string]any{"requestId": id, "reason": "the request that caused it ended"})
		_ = w.nc.PublishMsg(w.toClient(t.subject, bus.Notification("notifications/cancelled", p)))
		return upstream.Refusal(m.ID, upstream.CodeInternal, "the client did not answer "+m.Method+" before the call ended")
	}
}

// encodeRawRequest encodes a request with a raw id and params.
func encodeRawRequest(id json.RawMessage, method string, params json.RawMessage) []byte {
	b := make([]byte, 0, len(id)+len(method)+len(params)+48)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"method":`...)
	name, _ := json.Marshal(method) // an upstream may name it anything
	b = append(b, name...)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

// onServerRequestAnswer takes a client's answer to a relayed request (the
// router publishes it with the answering caller's envelope).
func (w *Worker) onServerRequestAnswer(msg *nats.Msg) {
	key := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	if n, ok := bus.ParkKey(key); ok && msg.Reply != "" {
		go w.resumePark(msg, n) // park.go: it waits for the upstream; bounded by maxParks
		return
	}
	v, ok := w.s2cWaits.Load(key)
	if !ok {
		w.log.Debug("answer to a server-to-client request nobody waits for (it ended)")
		return
	}
	wait := v.(*s2cWait)
	env, err := bus.ReadEnvelope(msg.Header)
	if err != nil || env.Session != wait.session || env.Caller.KeyID != wait.keyID {
		w.log.Warn("ignored an answer to a server-to-client request from another session or key", "caller", env.Caller.Name())
		return
	}
	if e := w.admits(env); e != nil {
		// The session's own caller, but from where (or with a key that) may
		// not reach this server now: the answer does not go upstream.
		w.log.Warn("refused an answer to a server-to-client request", "caller", env.Caller.Name(), "ip_class", env.IPClass, "reason", e.Message)
		msg = &nats.Msg{Data: bus.ErrorResponse(json.RawMessage(`null`), bus.Errorf(bus.ErrNotPermitted, "the client's answer was refused by the gateway: %s", e.Message))}
	}
	select {
	case wait.answer <- msg:
	default: // a second answer: the first one counts
	}
}

// toClient is a message for a client's stream or session subject (base),
// sent under this worker's server (bus.ClientSubject): the ingress delivers
// it only to a caller who may see and use that server (ingress mayDeliver),
// and bus permissions keep a worker to its own servers' subjects.
func (w *Worker) toClient(base string, data []byte) *nats.Msg {
	return &nats.Msg{Subject: bus.ClientSubject(base, w.up.Name), Data: data}
}

// startServerRequests subscribes to the answers of this replica's relayed
// requests.
func (w *Worker) startServerRequests() (err error) {
	w.s2cSub, err = w.nc.Subscribe(bus.ServerRequestSubjects(w.up.Name, w.s2cToken), w.onServerRequestAnswer)
	return err
}

// s2cTimeout bounds a GET-stream request's wait for the client: the server's
// timeout, as for a call.
func (w *Worker) s2cTimeout() time.Duration { return w.up.Timeout }
