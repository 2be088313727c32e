package ingress

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

func listenRequest(id string) (http.Header, string) {
	h := userKey.Clone()
	h.Set("Mcp-Protocol-Version", bus.FirstModernVersion)
	h.Set("Mcp-Method", bus.MethodSubscriptionsListen)
	h.Set("Accept", "text/event-stream")
	return h, `{"jsonrpc":"2.0","id":` + id + `,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"resourcesListChanged":true}}}`
}

// A listen the ingress ends as it shuts down ends with its result, tagged
// like every message on it, after the acknowledgement; a client could not
// tell a graceful end from a broken connection otherwise.
func TestListenEndsWithItsResultOnShutdown(t *testing.T) {
	h := newHarness(t, Options{Stateless: true}, nil)
	hdr, body := listenRequest(`42`)
	resp := do(t, http.MethodPost, h.url+"/mcp", hdr, body)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("listen: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ev := readEvents(resp)
	ack := ev.nextMessage(t, 5*time.Second)
	if !strings.Contains(ack.data, `"notifications/subscriptions/acknowledged"`) || !strings.Contains(ack.data, `"resourcesListChanged":true`) ||
		!strings.Contains(ack.data, `"`+bus.MetaSubscriptionID+`":42`) || ack.id != "" {
		t.Fatalf("first event %+v, want the acknowledgement, tagged 42, no event id", ack)
	}
	h.g.Close()
	last := ev.nextMessage(t, 5*time.Second)
	var res struct {
		ID     json.RawMessage
		Result struct {
			ResultType string                     `json:"resultType"`
			Meta       map[string]json.RawMessage `json:"_meta"`
		}
	}
	if err := json.Unmarshal([]byte(last.data), &res); err != nil || string(res.ID) != "42" || res.Result.ResultType != "complete" ||
		string(res.Result.Meta[bus.MetaSubscriptionID]) != "42" {
		t.Fatalf("last event %s, want the listen's complete result tagged 42", last.data)
	}
	ev.ended(t, 5*time.Second)
}

// A listen is an event stream or nothing.
func TestListenNeedsAnEventStream(t *testing.T) {
	h := newHarness(t, Options{Stateless: true}, nil)
	hdr, body := listenRequest(`1`)
	hdr.Set("Accept", "application/json")
	resp, out := rpcPost(t, h.url+"/mcp", hdr, body)
	if resp.StatusCode != http.StatusNotAcceptable || !strings.Contains(out, "text/event-stream") {
		t.Fatalf("listen accepting JSON only: HTTP %d %s", resp.StatusCode, out)
	}
}
