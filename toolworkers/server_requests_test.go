package toolworkers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

const samplingCaps = `{"sampling":{}}`

// A sampling request the upstream sends on a tools/call's stream reaches the
// stream subject of that call as a request with a gateway id; the client's
// answer, published to that id's reply subject with the caller's envelope,
// goes back upstream with the upstream's own id (else the go-sdk server would
// not take it), and the tool finishes with it.
func TestSamplingRelayedToStream(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", samplingCaps)
	client.Stream = newStreamSubject()
	stream := e.clientStream(t, client.Stream, func(req bus.Message) (bus.Envelope, string, bool) {
		return client, response(req.ID, `{"role":"assistant","model":"m","content":{"type":"text","text":"hi from the client"}}`), true
	})
	if got := e.toolText(t, client, "sample"); got != "sampled: hi from the client" {
		t.Fatalf("tool answered %q", got)
	}
	req := stream.next(t, "sampling/createMessage", 10*time.Second)
	var id string
	if json.Unmarshal(req.ID, &id) != nil || !strings.HasPrefix(id, "mcpbus-s2c."+relayServer+"."+e.w.s2cToken+".") {
		t.Fatalf("the client saw id %s, want a gateway id of this worker", req.ID)
	}
	if !strings.Contains(string(req.Params), `"say hi"`) {
		t.Fatalf("params not relayed: %s", req.Params)
	}
	// The upstream's request id was numeric and is what it got back.
	answers := e.up.requests("response")
	if len(answers) != 1 || answers[0].msg.ID[0] == '"' {
		t.Fatalf("upstream got answers %+v", answers)
	}
}

// Elicitation goes the same way, and the answer's content reaches the tool.
func TestElicitationRelayed(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", `{"elicitation":{}}`)
	client.Stream = newStreamSubject()
	e.clientStream(t, client.Stream, func(req bus.Message) (bus.Envelope, string, bool) {
		return client, response(req.ID, `{"action":"accept","content":{"name":"Ada"}}`), true
	})
	if got := e.toolText(t, client, "elicit"); got != "accept Ada" {
		t.Fatalf("tool answered %q", got)
	}
}

// An answer from the session's own caller that may no longer reach the server
// (an external IP class for an internal-only server, or a key without the
// server) does not go upstream as the client's answer: the upstream gets the
// refusal, with the reason.
func TestServerRequestAnswerCheckedForClassAndKey(t *testing.T) {
	for name, change := range map[string]func(*bus.Envelope){
		"external caller": func(env *bus.Envelope) { env.IPClass = bus.External },
		"no IP class":     func(env *bus.Envelope) { env.IPClass = "" },
		"key without the server": func(env *bus.Envelope) {
			env.Caller.Permissions = bus.Permissions{Servers: []string{"another"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newRelayEnv(t, newRelayUpstream(t))
			client := caller("s1", "k1", samplingCaps)
			client.Stream = newStreamSubject()
			e.clientStream(t, client.Stream, func(req bus.Message) (bus.Envelope, string, bool) {
				answering := client
				change(&answering)
				return answering, response(req.ID, `{"role":"assistant","model":"m","content":{"type":"text","text":"smuggled"}}`), true
			})
			got := e.toolText(t, client, "sample")
			if strings.Contains(got, "smuggled") || !strings.Contains(got, "refused by the gateway") {
				t.Fatalf("tool answered %q: the answer must be refused with the reason", got)
			}
		})
	}
}

// An answer published with another session's (or key's) envelope is ignored
// and logged; the right client's answer still counts. The client answers only
// once both forged answers were ignored, so none arrives after the request
// is settled.
func TestServerRequestAnswerFromWrongSessionIgnored(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", samplingCaps)
	client.Stream = newStreamSubject()
	intruder := caller("s2", "k1", samplingCaps)
	otherKey := caller("s1", "k2", samplingCaps)
	e.clientStream(t, client.Stream, func(req bus.Message) (bus.Envelope, string, bool) {
		subj, _ := bus.ServerRequestReplySubject(req.ID)
		for _, env := range []bus.Envelope{intruder, otherKey} {
			_ = e.nc.PublishMsg(&nats.Msg{Subject: subj, Header: env.Header(),
				Data: []byte(response(req.ID, `{"role":"assistant","model":"m","content":{"type":"text","text":"forged"}}`))})
		}
		// Not on the test's goroutine: the count is checked below.
		_ = bustest.Poll(30*time.Second, func() error { return bustest.AtLeast("forged answers ignored", e.forgedIgnored(), 2) })
		return client, response(req.ID, `{"role":"assistant","model":"m","content":{"type":"text","text":"genuine"}}`), true
	})
	if got := e.toolText(t, client, "sample"); got != "sampled: genuine" {
		t.Fatalf("tool answered %q", got)
	}
	if n := e.forgedIgnored(); n != 2 {
		t.Fatalf("%d forged answers logged, want 2:\n%s", n, e.logs.String())
	}
}

// A client that did not declare sampling is never asked: the upstream gets
// an error at once, and nothing reaches the client's stream. "At once": the
// refusal gives that reason, which the worker knows without waiting for any
// answer (a wait would end in a timeout, not this refusal).
func TestServerRequestWithoutCapabilityRefusedAtOnce(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", `{}`)
	client.Stream = newStreamSubject()
	stream := e.clientStream(t, client.Stream, nil)
	got := e.toolText(t, client, "sample")
	if !strings.Contains(got, "the client cannot receive sampling/createMessage: it did not declare the sampling capability") {
		t.Fatalf("tool answered %q", got)
	}
	for _, m := range stream.drain() {
		if m.IsRequest() {
			t.Fatalf("the client got a request anyway: %s %s", m.Method, m.ID)
		}
	}
}

// Nobody holds the stream (the client went away): no responders, so the
// upstream is told at once instead of waiting for an answer: the refusal says
// the stream is gone (what NATS's no-responders answer means), not that an
// answer did not come in time.
func TestServerRequestUndeliverableRefusedAtOnce(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", samplingCaps)
	client.Stream = newStreamSubject() // nobody subscribed
	got := e.toolText(t, client, "sample")
	if !strings.Contains(got, "the client cannot receive sampling/createMessage: its stream is gone") {
		t.Fatalf("tool answered %q", got)
	}
}

// A request the upstream sends outside any call, on a private session's GET
// stream, goes to that downstream session's subject; its answer goes back on
// the same upstream session.
func TestServerRequestOnPrivateGETStreamGoesToSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", `{"roots":{"listChanged":true}}`)
	sess := e.clientStream(t, bus.SessionSubject("s1"), func(req bus.Message) (bus.Envelope, string, bool) {
		return client, response(req.ID, `{"roots":[{"uri":"file:///work","name":"work"}]}`), true
	})
	e.openGETStream(t, client)
	if got := e.toolText(t, client, "rootsLater"); got != "asked" {
		t.Fatalf("tool answered %q", got)
	}
	select {
	case got := <-e.up.later:
		if got != "file:///work" {
			t.Fatalf("upstream got roots %q", got)
		}
	case <-time.After(30 * time.Second): // only one never answered gets here
		t.Fatal("the upstream's roots/list was never answered")
	}
	sess.next(t, "roots/list", 10*time.Second)
}

// On the shared session nobody in particular can answer a request sent
// outside any call: the upstream gets an error saying so.
func TestServerRequestOnSharedGETStreamRefused(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	e.openGETStream(t, caller("s1", "k1", ""))
	if got := e.toolText(t, caller("s1", "k1", ""), "rootsLater"); got != "asked" {
		t.Fatalf("tool answered %q", got)
	}
	select {
	case got := <-e.up.later:
		if !strings.Contains(got, "no single client can answer it") {
			t.Fatalf("upstream got %q", got)
		}
	case <-time.After(30 * time.Second): // only one never answered gets here
		t.Fatal("the upstream's roots/list was never answered")
	}
}

// forgedIgnored counts the answers from another session or key the worker
// logged as ignored.
func (e *relayEnv) forgedIgnored() int {
	return strings.Count(e.logs.String(), "ignored an answer to a server-to-client request from another session or key")
}
