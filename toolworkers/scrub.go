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
)

// scrubbedUpstream returns the upstream client for a link (header, caps and
// events as for newUpstream), wrapped so that nothing it returns or relays
// carries a value in header or another credential of the server. A server
// without any gets the bare client.
func (w *Worker) scrubbedUpstream(header http.Header, caps json.RawMessage, events sessionEvents) upstream {
	s := w.cred.Scrubber(header)
	if s == nil {
		return w.newUpstream(header, caps, events)
	}
	return &scrubbingUpstream{upstream: w.newUpstream(header, caps, scrubbedEvents{events, s}), s: s}
}

// scrubbingUpstream is an upstream whose answers are scrubbed.
type scrubbingUpstream struct {
	upstream
	s *credential.Scrubber
}

func (u *scrubbingUpstream) Call(ctx context.Context, method string, params json.RawMessage, r *callRelay) (*bus.Message, error) {
	if r != nil && r.secrets == nil {
		// Set before the call starts anything that reads it; a retry of
		// the same call finds it set.
		r.secrets = u.s
	}
	resp, err := u.upstream.Call(ctx, method, params, r)
	if err != nil {
		err = u.s.Err(err)
	}
	return u.s.Response(resp), err
}

func (u *scrubbingUpstream) Notify(ctx context.Context, method string, params json.RawMessage) error {
	return u.s.Err(u.upstream.Notify(ctx, method, params))
}

func (u *scrubbingUpstream) Info(ctx context.Context) (json.RawMessage, error) {
	info, err := u.upstream.Info(ctx)
	if err != nil {
		err = u.s.Err(err)
	}
	return u.s.JSON(info), err
}

// scrubbedEvents cleans what an upstream session sends outside calls before
// the link relays it.
type scrubbedEvents struct {
	sessionEvents
	s *credential.Scrubber
}

func (e scrubbedEvents) sessionNotification(method string, params json.RawMessage) {
	e.sessionEvents.sessionNotification(method, e.s.JSON(params))
}

func (e scrubbedEvents) serverRequest(ctx context.Context, m *bus.Message) []byte {
	return e.sessionEvents.serverRequest(ctx, e.s.Message(m))
}
