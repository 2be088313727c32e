package toolworkers

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
)

// levels returns the levels of the log messages on the stream, in order.
func levels(t *testing.T, cs *clientStream) []string {
	t.Helper()
	var out []string
	for _, m := range cs.drain() {
		if m.Method == "notifications/message" {
			var p struct{ Level string }
			json.Unmarshal(m.Params, &p)
			out = append(out, p.Level)
		}
	}
	return out
}

// awaitLevels returns the levels of the log messages on cs once n have
// arrived (they may trail the call's answer), and of any more already there.
func awaitLevels(t *testing.T, cs *clientStream, n int) []string {
	t.Helper()
	var out []string
	deadline := time.After(30 * time.Second) // only a lost message gets here
	for len(out) < n {
		select {
		case m := <-cs.msgs:
			if m.Method == "notifications/message" {
				var p struct{ Level string }
				json.Unmarshal(m.Params, &p)
				out = append(out, p.Level)
			}
		case <-deadline:
			t.Fatalf("%d log messages on the stream, want %d: %v", len(out), n, out)
		}
	}
	return append(out, levels(t, cs)...)
}

// On the shared session one client never sets the level for others:
// logging/setLevel is answered {} by the worker, the upstream session is set
// only when a client asks for more than it sends (so the messages exist), and
// each call's messages are filtered by its own session's level.
func TestLoggingOnSharedSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	a, b := caller("sA", "k1", ""), caller("sB", "k1", "")
	set := func(who bus.Envelope, level string, forwarded int) {
		t.Helper()
		r := e.request(t, who, "logging/setLevel", `{"level":"`+level+`"}`, 1)
		if r.gwErr != nil || string(r.result) != "{}" {
			t.Fatalf("setLevel %s: %s %v", level, r.raw, r.gwErr)
		}
		if n := e.up.count("logging/setLevel"); n != forwarded {
			t.Fatalf("after setLevel %s the upstream got %d, want %d", level, n, forwarded)
		}
	}
	set(a, "warning", 1)
	set(b, "error", 1) // less than the upstream already sends: not forwarded
	set(a, "debug", 2)
	if r := e.request(t, a, "logging/setLevel", `{"level":"loud"}`, 1); r.gwErr == nil || r.gwErr.Kind != bus.ErrInvalidParams {
		t.Fatalf("an unknown level was accepted: %s", r.raw)
	}

	b.LogLevel = "warning"
	b.Stream = newStreamSubject()
	stream := e.clientStream(t, b.Stream, nil)
	if got := e.toolText(t, b, "log"); got != "logged" {
		t.Fatal(got)
	}
	if got := awaitLevels(t, stream, 2); !slices.Equal(got, []string{"warning", "error"}) {
		t.Fatalf("a warning-level session got %v", got)
	}
	a.Stream = newStreamSubject()
	stream = e.clientStream(t, a.Stream, nil)
	e.toolText(t, a, "log")
	if got := awaitLevels(t, stream, 4); !slices.Equal(got, []string{"debug", "info", "warning", "error"}) {
		t.Fatalf("a session without a level got %v", got)
	}
}

// On a private session logging/setLevel goes upstream every time: the
// session is that client's alone.
func TestLoggingOnPrivateSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	c := caller("s1", "k1", samplingCaps)
	for i, level := range []string{"error", "info"} {
		if r := e.request(t, c, "logging/setLevel", `{"level":"`+level+`"}`, 1); r.gwErr != nil || r.rpcErr != nil {
			t.Fatalf("setLevel: %s %v", r.raw, r.gwErr)
		}
		if n := e.up.count("logging/setLevel"); n != i+1 {
			t.Fatalf("upstream got %d setLevel, want %d", n, i+1)
		}
	}
	c.Stream, c.LogLevel = newStreamSubject(), "info"
	stream := e.clientStream(t, c.Stream, nil)
	e.toolText(t, c, "log")
	if got := awaitLevels(t, stream, 3); !slices.Equal(got, []string{"info", "warning", "error"}) {
		t.Fatalf("an info-level private session got %v", got)
	}
}

// Progress is relayed to the call's stream with the caller's own token; the
// upstream saw a token of the gateway's.
func TestProgressRelayedWithCallersToken(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	c := caller("s1", "k1", "")
	c.Stream = newStreamSubject()
	stream := e.clientStream(t, c.Stream, nil)
	r := e.request(t, c, "tools/call", `{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-1"}}`, 5)
	if r.gwErr != nil || r.rpcErr != nil {
		t.Fatalf("%s %v", r.raw, r.gwErr)
	}
	for i := 1; i <= 2; i++ {
		m := stream.next(t, "notifications/progress", 10*time.Second)
		var p struct {
			ProgressToken json.RawMessage
			Progress      float64
		}
		json.Unmarshal(m.Params, &p)
		if string(p.ProgressToken) != `"tok-1"` || p.Progress != float64(i) {
			t.Fatalf("progress %d: %s", i, m.Params)
		}
	}
	var sent struct {
		Meta struct{ ProgressToken string } `json:"_meta"`
	}
	json.Unmarshal(e.up.requests("tools/call")[0].msg.Params, &sent)
	if sent.Meta.ProgressToken == "tok-1" || sent.Meta.ProgressToken == "" {
		t.Fatalf("upstream saw progress token %q", sent.Meta.ProgressToken)
	}
}

// A shared session whose server declared no logging capability is not sent
// logging/setLevel at all: the client gets {} (its own level still filters).
func TestLoggingNotForwardedToServerWithoutLogging(t *testing.T) {
	f := upstreamtest.NewFake(t) // declares tools only
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, _ string) {
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		upstreamtest.WriteJSONResult(w, m.ID, `{}`)
	}
	e := newRelayEnvURL(t, f.URL())
	r := e.request(t, caller("s1", "k1", ""), "logging/setLevel", `{"level":"debug"}`, 1)
	if r.gwErr != nil || string(r.result) != "{}" {
		t.Fatalf("setLevel: %s %v", r.raw, r.gwErr)
	}
	if n := len(f.ByMethod("logging/setLevel")); n != 0 {
		t.Fatalf("upstream without logging got %d setLevel", n)
	}
}

// A shared session is made verbose enough for a caller whose session set its
// level through another replica (the level travels in the envelope).
func TestLoggingSharedSessionFollowsEnvelopeLevel(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	c := caller("s1", "k1", "")
	c.LogLevel, c.Stream = "info", newStreamSubject()
	stream := e.clientStream(t, c.Stream, nil)
	e.toolText(t, c, "log")
	e.toolText(t, c, "log")
	if n := e.up.count("logging/setLevel"); n != 1 {
		t.Fatalf("upstream got %d setLevel, want 1", n)
	}
	if got := awaitLevels(t, stream, 6); !slices.Equal(got, []string{"info", "warning", "error", "info", "warning", "error"}) {
		t.Fatalf("log messages %v", got)
	}
}
