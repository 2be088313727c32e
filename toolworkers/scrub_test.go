package toolworkers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// What an upstream sends on a session's GET stream (log messages, requests
// for the client) is scrubbed before the link relays it.
func TestScrubbedSessionEvents(t *testing.T) {
	sink := &scrubEventSink{}
	w := &Worker{up: &config.Upstream{Name: "s"}}
	s := w.cred.Scrubber(http.Header{"X-Api-Key": {"key/0123456789"}})
	e := scrubbedEvents{sink, s}
	e.SessionNotification("notifications/message", json.RawMessage(`{"level":"info","data":"key\/0123456789"}`))
	answer := e.ServerRequest(context.Background(), &bus.Message{ID: json.RawMessage(`1`), Method: "sampling/createMessage",
		Params: json.RawMessage(`{"messages":[{"role":"user","content":{"type":"text","text":"key/0123456789"}}]}`)})
	if string(answer) != "ok" || strings.Join(sink.got, " ") != `{"level":"info","data":"[redacted]"} {"messages":[{"role":"user","content":{"type":"text","text":"[redacted]"}}]}` {
		t.Errorf("relayed %q", sink.got)
	}
	if w.cred.Scrubber(http.Header{"X-Short": {"abc"}}) != nil {
		t.Error("a scrubber for nothing")
	}
}

type scrubEventSink struct{ got []string }

func (s *scrubEventSink) SessionOpened() {}
func (s *scrubEventSink) SessionLost()   {}
func (s *scrubEventSink) SessionNotification(_ string, params json.RawMessage) {
	s.got = append(s.got, string(params))
}
func (s *scrubEventSink) ServerRequest(_ context.Context, m *bus.Message) []byte {
	s.got = append(s.got, string(m.Params))
	return []byte("ok")
}
