package upstream

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
)

// Dropping the HTTP request is no cancellation in MCP: when a call's context
// ends, the client tells the upstream with notifications/cancelled for the
// request id it used, in the same session. The context ends (cancelled, or
// its deadline passes) once the upstream has the call.
func TestCallContextEndSendsCancelled(t *testing.T) {
	f := upstreamtest.NewFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	arrived := make(chan struct{}, 1)
	f.Call = func(w http.ResponseWriter, r *http.Request, m bus.Message, sid string) {
		if m.Method == "notifications/cancelled" {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		select {
		case arrived <- struct{}{}:
		default:
		}
		select { // a slow tool
		case <-release:
		case <-r.Context().Done():
		}
	}
	c := fakeClient(t, f)
	for _, tc := range []struct {
		name   string
		ctx    func() (context.Context, func())
		reason string
	}{
		{"cancelled", func() (context.Context, func()) {
			return context.WithCancel(context.Background())
		}, "cancelled by the gateway"},
		{"deadline", func() (context.Context, func()) {
			return bustest.ExpiringContext(context.Background())
		}, "the gateway's timeout for this call expired"},
	} {
		before := len(f.ByMethod("notifications/cancelled"))
		ctx, end := tc.ctx()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"slow"}`), nil)
			errc <- err
		}()
		<-arrived
		end()
		if err := <-errc; err == nil {
			t.Fatalf("%s: the call succeeded", tc.name)
		}
		calls := f.ByMethod("tools/call")
		want := string(calls[len(calls)-1].Msg.ID)
		bustest.Eventually(t, 30*time.Second, tc.name+": notifications/cancelled reaches the upstream", func() error {
			return bustest.AtLeast("notifications/cancelled upstream", len(f.ByMethod("notifications/cancelled")), before+1)
		})
		got := f.ByMethod("notifications/cancelled")[before]
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
			Reason    string          `json:"reason"`
		}
		json.Unmarshal(got.Msg.Params, &p)
		if string(p.RequestID) != want || p.Reason != tc.reason || got.Header.Get("Mcp-Session-Id") == "" {
			t.Fatalf("%s: cancelled %s (%q) in session %q, want request %s with %q", tc.name, p.RequestID, p.Reason, got.Header.Get("Mcp-Session-Id"), want, tc.reason)
		}
	}
}
