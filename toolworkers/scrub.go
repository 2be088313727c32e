package toolworkers

// Scrubbing (toolworkers/credential/scrub.go says what and how): every link's
// upstream is wrapped so that nothing it returns or relays carries a value
// the worker sent upstream.

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
)

// scrubbedUpstream returns the upstream client for a link (header, caps and
// events as for newUpstream), wrapped so that nothing it returns or relays
// carries a value in header or another credential of the server. A server
// without any gets the bare client.
func (w *Worker) scrubbedUpstream(header http.Header, caps json.RawMessage, events upstream.Events) upstream.Client {
	s := w.cred.Scrubber(header)
	if s == nil {
		return w.newUpstream(header, caps, events)
	}
	return &scrubbingUpstream{Client: w.newUpstream(header, caps, scrubbedEvents{events, s}), s: s}
}

// scrubbingUpstream is an upstream whose answers are scrubbed.
type scrubbingUpstream struct {
	upstream.Client
	s *credential.Scrubber
}

func (u *scrubbingUpstream) Call(ctx context.Context, method string, params json.RawMessage, r upstream.Relay) (*bus.Message, error) {
	if cr, ok := r.(*callRelay); ok && cr != nil && cr.secrets == nil {
		// Set before the call starts anything that reads it; a retry of
		// the same call finds it set. (A field of the pooled relay, not a
		// wrapper: a call allocates nothing for it.)
		cr.secrets = u.s
	}
	resp, err := u.Client.Call(ctx, method, params, r)
	if err != nil {
		err = u.s.Err(err)
	}
	return u.s.Response(resp), err
}

func (u *scrubbingUpstream) Notify(ctx context.Context, method string, params json.RawMessage) error {
	return u.s.Err(u.Client.Notify(ctx, method, params))
}

func (u *scrubbingUpstream) Info(ctx context.Context) (json.RawMessage, error) {
	info, err := u.Client.Info(ctx)
	if err != nil {
		err = u.s.Err(err)
	}
	return u.s.JSON(info), err
}

// scrubbedEvents cleans what an upstream session sends outside calls before
// the link relays it.
type scrubbedEvents struct {
	upstream.Events
	s *credential.Scrubber
}

func (e scrubbedEvents) SessionNotification(method string, params json.RawMessage) {
	e.Events.SessionNotification(method, e.s.JSON(params))
}

func (e scrubbedEvents) ServerRequest(ctx context.Context, m *bus.Message) []byte {
	return e.Events.ServerRequest(ctx, e.s.Message(m))
}
