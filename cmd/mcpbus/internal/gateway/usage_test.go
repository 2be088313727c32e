package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

// usageEvents reads want events from the gateway's usage stream (they are
// published after the answer, so they may still be on their way).
func usageEvents(t *testing.T, g *testGateway, want int) []bus.UsageMsg {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleUsage)
	read := func() []bus.UsageMsg {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out []bus.UsageMsg
		err := bus.ReadUsage(ctx, nc, bus.SubjectUsageAll, bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			out = append(out, m)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var out []bus.UsageMsg
	bustest.Eventually(t, 10*time.Second, fmt.Sprintf("%d usage events", want), func() error {
		out = read()
		return bustest.AtLeast("usage events", len(out), want)
	})
	for _, m := range out {
		recordBody(m.Data) // the suite's secret scan covers events too
	}
	// Nothing more: initialize (answered by the router) is no usage. It came
	// before the calls, so an event of it would be stored before theirs.
	if len(out) != want {
		for _, m := range out[min(want, len(out)):] {
			t.Errorf("unexpected event: %s", m.Data)
		}
		t.Fatalf("usage stream has %d events, want %d", len(out), want)
	}
	return out
}

// Calls through the gateway with a virtual key produce one event each, on
// the team's, server's and tool's subject, with the configured cost.
func TestUsageEventsThroughGateway(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a:
    url: %q
    mcp_info:
      mcp_server_cost_info:
        default_cost_per_query: 0.01
        tool_name_to_cost_per_query: {add: 0.05}
`, master, a), nil)
	status, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "billing"})
	teamID, _ := team["team_id"].(string)
	if status != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: HTTP %d %v", status, team)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "billing-bot", "team_id": teamID})
	url := g.URL() + "/mcp/a"
	h := initSession(t, url, bearer(key))

	type call struct{ body, method, tool, status, code string }
	calls := []call{
		{rpc("tools/call", 2, `{"name":"add","arguments":{"a":1,"b":2}}`), "tools/call", "add", "ok", ""},
		{rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"hi"}}`), "tools/call", "echo", "ok", ""},
		{rpc("tools/list", 4, ""), "tools/list", "", "ok", ""},
		// An unknown tool is a JSON-RPC error from the upstream: status error, no cost.
		{rpc("tools/call", 5, `{"name":"no-such-tool","arguments":{}}`), "tools/call", "no-such-tool", "error", "-32602"},
	}
	sizes := make([]int, len(calls))
	began := time.Now() // each event's time is its call's start: between this and when it is read
	for i, c := range calls {
		r := post(t, url, h, c.body)
		if r.status != http.StatusOK {
			t.Fatalf("%s: HTTP %d %s", c.body, r.status, r.body)
		}
		sizes[i] = len(r.body)
	}
	msgs := usageEvents(t, g, len(calls))
	ids := map[string]bool{}
	for i, m := range msgs {
		c := calls[i] // one worker replica publishes in call order
		var ev bus.UsageEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		wantCost := 0.0
		if c.status == "ok" && c.method == "tools/call" {
			wantCost = 0.01
			if c.tool == "add" {
				wantCost = 0.05
			}
		}
		if ev.Server != "a" || ev.Team != teamID || ev.KeyAlias != "billing-bot" || ev.KeyID != bus.HashKey(key) ||
			ev.Method != c.method || ev.Tool != c.tool || ev.Status != c.status || ev.ErrorCode != c.code || ev.Cost != wantCost ||
			ev.IPClass != bus.Internal || ev.DurationMS <= 0 || ev.BytesIn != len(c.body) || ev.BytesOut == 0 ||
			ev.Time.Before(began) || ev.Time.After(time.Now()) || ev.RequestID == "" {
			t.Errorf("event %d for %s:\n%s", i, c.body, m.Data)
		}
		// The worker's answer is relayed as the HTTP body: same bytes.
		if ev.BytesOut != sizes[i] {
			t.Errorf("event %d: bytes_out %d, HTTP body %d", i, ev.BytesOut, sizes[i])
		}
		if subj := bus.UsageSubject(teamID, "a", c.tool); m.Subject != subj {
			t.Errorf("event %d: subject %s, want %s", i, m.Subject, subj)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != ev.RequestID || ids[ev.RequestID] {
			t.Errorf("event %d: Nats-Msg-Id %q, request id %q", i, m.Header.Get(jetstream.MsgIDHeader), ev.RequestID)
		}
		ids[ev.RequestID] = true
		if strings.Contains(string(m.Data), key) {
			t.Errorf("event %d holds the caller's key", i)
		}
	}
	assertNoSecrets(t, g, key)
}
