package toolworkers

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// initCaps returns the capabilities each upstream initialize declared.
func (u *relayUpstream) initCaps() []string {
	var out []string
	for _, s := range u.requests("initialize") {
		var p struct {
			Capabilities json.RawMessage `json:"capabilities"`
		}
		json.Unmarshal(s.msg.Params, &p)
		out = append(out, string(p.Capabilities))
	}
	return out
}

// A downstream session whose client declared sampling, elicitation or roots
// gets an upstream session of its own, declaring exactly its capabilities;
// clients without them share one session that declares none. A closed
// downstream session closes its upstream one.
func TestPrivateSessionPerDownstreamSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	for _, env := range []bus.Envelope{
		caller("s1", "k1", samplingCaps), caller("s2", "k1", samplingCaps),
		caller("s3", "k1", ""), caller("s4", "k2", `{}`),
		caller("s1", "k1", samplingCaps), caller("s3", "k1", ""),
	} {
		e.toolText(t, env, "echo")
	}
	caps := e.up.initCaps()
	if len(caps) != 3 {
		t.Fatalf("upstream initializes declared %v, want 3 (two private, one shared)", caps)
	}
	private, shared := 0, 0
	for _, c := range caps {
		switch c {
		case samplingCaps:
			private++
		case `{}`:
			shared++
		}
	}
	if private != 2 || shared != 1 {
		t.Fatalf("upstream initializes declared %v", caps)
	}
	if n := e.w.private.count(); n != 2 {
		t.Fatalf("%d private sessions, want 2", n)
	}
	if err := e.nc.Publish(bus.SubjectSessionClosed, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the upstream session of s1 is ended", func() error { return bustest.Want("DELETEs upstream", e.up.count(http.MethodDelete), 1) })
	if n := e.w.private.count(); n != 1 {
		t.Fatalf("%d private sessions after s1 closed, want 1", n)
	}
	e.toolText(t, caller("s1", "k1", samplingCaps), "echo") // a later call opens a new one
	if n := e.up.count("initialize"); n != 4 {
		t.Fatalf("upstream got %d initializes, want 4", n)
	}
}

// notifications/roots/list_changed is answered with an empty body and
// forwarded to the private session of the client that sent it; a session
// without one (it declared no roots upstream) forwards nothing.
func TestRootsListChangedForwardedToPrivateSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	rooted := caller("s1", "k1", `{"roots":{"listChanged":true}}`)
	e.toolText(t, rooted, "echo")
	notify := func(env bus.Envelope) {
		t.Helper()
		m, err := e.nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC(relayServer), Header: env.Header(),
			Data: []byte(`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`)}, 5*time.Second)
		if err != nil || bus.ReplyError(m) != nil || len(m.Data) != 0 {
			t.Fatalf("notification answered %q %v %v", m.Data, err, bus.ReplyError(m))
		}
	}
	notify(caller("s9", "k1", ""))
	notify(rooted)
	bustest.Eventually(t, 30*time.Second, "the upstream heard of the roots change", func() error {
		e.up.mu.Lock()
		defer e.up.mu.Unlock()
		return bustest.Want("roots/list_changed noted upstream", e.up.rootsNote, 1)
	})
	// The worker answers a roots notification once its POST upstream is
	// answered, so a forwarded one from s9 is counted already.
	if n := e.up.count("notifications/roots/list_changed"); n != 1 {
		t.Fatalf("upstream got %d roots/list_changed, want 1", n)
	}
}

// A private session's level follows the level its client set, even when the
// client's logging/setLevel went to another replica: the level in the
// envelope is set upstream before the call.
func TestPrivateSessionFollowsSessionLevel(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	c := caller("s1", "k1", samplingCaps)
	c.LogLevel = "warning" // set through another replica
	c.Stream = newStreamSubject()
	stream := e.clientStream(t, c.Stream, nil)
	e.toolText(t, c, "log")
	e.toolText(t, c, "echo")
	if n := e.up.count("logging/setLevel"); n != 1 {
		t.Fatalf("upstream got %d setLevel, want 1", n)
	}
	if got := awaitLevels(t, stream, 2); strings.Join(got, ",") != "warning,error" {
		t.Fatalf("log messages %v", got)
	}
}
