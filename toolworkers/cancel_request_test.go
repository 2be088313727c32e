package toolworkers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// A client's notifications/cancelled, as the router publishes it, stops the
// call it names: the upstream gets notifications/cancelled with the id of
// ITS request (not the client's), and the call answers that the client
// cancelled it. A cancel from another session or key, or for another id,
// stops nothing.
func TestClientCancelRequestStopsTheCall(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", "")
	e.toolText(t, client, "echo") // session open
	done := make(chan rpcAnswer, 1)
	go func() { done <- e.request(t, client, "tools/call", `{"name":"slow","arguments":{}}`, 42) }()
	bustest.Eventually(t, 30*time.Second, "the slow call reached the upstream", func() error { return bustest.Want("tools/call upstream", e.up.count("tools/call"), 2) })
	publish := func(cr bus.CancelRequest) {
		data, _ := json.Marshal(cr)
		if err := e.nc.Publish(bus.SubjectCancelRequest, data); err != nil {
			t.Fatal(err)
		}
	}
	publish(bus.CancelRequest{Session: "s2", KeyID: "k1", ID: json.RawMessage(`42`)})
	publish(bus.CancelRequest{Session: "s1", KeyID: "k2", ID: json.RawMessage(`42`)})
	publish(bus.CancelRequest{Session: "s1", KeyID: "k1", ID: json.RawMessage(`43`)})
	select {
	case a := <-done:
		t.Fatalf("a cancel for another call stopped it: %s %v", a.raw, a.gwErr)
	case <-time.After(300 * time.Millisecond): // real time: a cancel that stops nothing has no event to wait for
	}
	publish(bus.CancelRequest{Session: "s1", KeyID: "k1", ID: json.RawMessage(`42`), Reason: "user pressed stop"})
	var a rpcAnswer
	select {
	case a = <-done:
	case <-time.After(30 * time.Second): // only a call that never ends gets here
		t.Fatal("the cancelled call did not end")
	}
	if a.gwErr == nil || !strings.Contains(a.gwErr.Message, "cancelled by the client") {
		t.Fatalf("cancelled call answered %s %v", a.raw, a.gwErr)
	}
	bustest.Eventually(t, 30*time.Second, "notifications/cancelled reached the upstream", func() error {
		return bustest.Want("notifications/cancelled upstream", e.up.count("notifications/cancelled"), 1)
	})
	upstreamID := e.up.requests("tools/call")[1].msg.ID
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
	}
	json.Unmarshal(e.up.requests("notifications/cancelled")[0].msg.Params, &p)
	if string(p.RequestID) != string(upstreamID) || string(upstreamID) == "42" {
		t.Fatalf("upstream was told to cancel %s; its request was %s", p.RequestID, upstreamID)
	}
}
