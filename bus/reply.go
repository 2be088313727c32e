package bus

import (
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Reply answers a micro request from a goroutine other than the handler's.
// micro.Request records a failed Respond in a field its service reads once the
// handler returns, so a handler that hands its work to a Pool must not call
// Respond later; Reply publishes to the reply subject itself, with the same
// error headers micro uses. A request without a reply subject (a published
// notification) is answered by nothing.
type Reply struct {
	nc      *nats.Conn
	subject string
	keep    *Responder // keeps the answer for a recall (Responder.Reply)
	// capture, when set, takes the answer instead of the bus (CaptureReply).
	capture func(*nats.Msg)
}

// CaptureReply is a Reply that hands its answer to capture instead of
// sending it: a call a worker runs for a task, whose answer goes to the
// tasks bucket (tasks.go).
func CaptureReply(capture func(*nats.Msg)) Reply { return Reply{capture: capture} }

// NewReply captures where req wants its answer.
func NewReply(nc *nats.Conn, req micro.Request) Reply {
	return Reply{nc: nc, subject: req.Reply()}
}

// ReplyTo is a Reply to a plain NATS request's reply subject.
func ReplyTo(nc *nats.Conn, subject string) Reply {
	return Reply{nc: nc, subject: subject}
}

// Respond sends data as the answer. data must not change afterwards: a
// live request's answer is kept for a recall as it is, not copied.
func (r Reply) Respond(data []byte) error {
	if r.capture != nil {
		r.capture(&nats.Msg{Data: data})
		return nil
	}
	if r.subject == "" {
		return nil
	}
	if r.keep != nil {
		r.keep.keepAnswer(&nats.Msg{Subject: r.subject, Data: data})
	}
	return r.nc.Publish(r.subject, data)
}

// Msg sends data as the answer with headers h.
func (r Reply) Msg(data []byte, h nats.Header) {
	if r.capture != nil {
		r.capture(&nats.Msg{Data: data, Header: h})
		return
	}
	if r.subject == "" {
		return
	}
	m := &nats.Msg{Subject: r.subject, Data: data, Header: h}
	if r.keep != nil {
		r.keep.keepAnswer(m)
	}
	_ = r.nc.PublishMsg(m)
}

// Error sends e in micro's error headers.
func (r Reply) Error(e *Error) error { return r.ErrorWith(e, nil) }

// ErrorWith sends e with the headers of extra besides micro's.
func (r Reply) ErrorWith(e *Error, extra nats.Header) error {
	if r.subject == "" && r.capture == nil {
		return nil
	}
	h := nats.Header{
		micro.ErrorCodeHeader: {e.Kind.Code},
		micro.ErrorHeader:     {headerSafe(e.Message)},
	}
	if e.RetryAfter > 0 {
		h[HeaderRetryAfter] = []string{retrySeconds(e.RetryAfter)}
	}
	if e.Elicitation.Valid() {
		h[HeaderElicitationID], h[HeaderElicitationURL] = []string{e.Elicitation.ID}, []string{e.Elicitation.URL}
	}
	for k, v := range extra {
		h[k] = v
	}
	m := &nats.Msg{Subject: r.subject, Header: h}
	if r.capture != nil {
		r.capture(m)
		return nil
	}
	if r.keep != nil {
		r.keep.keepAnswer(m)
	}
	return r.nc.PublishMsg(m)
}

// DecodeRequest reads the envelope and the JSON-RPC message of a request a
// service received, or the error to answer it with.
func DecodeRequest(req micro.Request) (Envelope, *Message, *Error) {
	env, err := ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return env, nil, e
		}
		return env, nil, Errorf(ErrBadRequest, "%v", err)
	}
	msg, perr := ParseMessage(req.Data())
	if perr != nil {
		return env, nil, perr
	}
	return env, msg, nil
}
