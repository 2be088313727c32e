package toolworkers

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// Right after notifications/initialized the worker opens the session's GET
// stream, with the session id, the protocol version and Accept:
// text/event-stream, and keeps it open (one GET, no reconnect loop).
func TestGETStreamOpenedAfterInitialize(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	e.toolText(t, caller("s1", "k1", ""), "echo")
	bustest.Eventually(t, 30*time.Second, "a GET reached the upstream", func() error { return bustest.AtLeast("GETs upstream", e.up.count("GET"), 1) })
	e.up.mu.Lock()
	var order []string
	for _, s := range e.up.seen {
		if s.method == http.MethodGet {
			order = append(order, "GET")
		} else if s.msg.Method == "initialize" || s.msg.Method == "notifications/initialized" {
			order = append(order, s.msg.Method)
		}
	}
	e.up.mu.Unlock()
	if strings.Join(order, " ") != "initialize notifications/initialized GET" {
		t.Fatalf("upstream saw %v, want initialize, notifications/initialized, then GET", order)
	}
	get := e.up.requests("GET")[0]
	init := e.up.requests("tools/call")[0]
	if get.header.Get("Accept") != "text/event-stream" || get.header.Get("Mcp-Session-Id") == "" ||
		get.header.Get("Mcp-Session-Id") != init.header.Get("Mcp-Session-Id") || get.header.Get("Mcp-Protocol-Version") == "" {
		t.Fatalf("GET headers %v", get.header)
	}
	// Real time: a reconnect loop (first backoff 100 ms) would show as a
	// second GET by then; a stream kept open shows nothing to wait on.
	time.Sleep(300 * time.Millisecond)
	if n := e.up.count("GET"); n != 1 {
		t.Fatalf("upstream got %d GETs, want the one stream kept open", n)
	}
	e.w.Stop()
	if n := e.up.count("DELETE"); n != 1 {
		t.Fatalf("upstream got %d DELETEs at stop, want 1", n)
	}
}

// A server without a GET stream answers 405: the worker does not ask again
// for that session, and calls work as before.
func TestGETStream405StopsTrying(t *testing.T) {
	up := newRelayUpstream(t)
	up.noGET = true
	listening := listeners()
	e := newRelayEnv(t, up)
	client := caller("s1", "k1", "")
	e.toolText(t, client, "echo")
	bustest.Eventually(t, 30*time.Second, "a GET reached the upstream", func() error { return bustest.AtLeast("GETs upstream", e.up.count("GET"), 1) })
	// The session's GET stream loop ends (one retrying waits out its backoff).
	bustest.Eventually(t, 30*time.Second, "the worker stops listening for a GET stream", func() error {
		if n := listeners(); n > listening {
			return fmt.Errorf("%d GET stream loops running, %d before the test", n, listening)
		}
		return nil
	})
	e.toolText(t, client, "echo")
	if n := e.up.count("GET"); n != 1 {
		t.Fatalf("upstream got %d GETs after a 405, want 1", n)
	}
}

// listeners counts the goroutines keeping a GET stream open (in any test's
// client: compare counts).
func listeners() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "upstream.(*streamableClient).listen(")
}
