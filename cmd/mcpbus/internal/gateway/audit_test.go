package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

// auditRecords reads want records from the gateway's audit stream, as the
// audit role does (they are published after the answer, so they may still
// be on their way), and fails on more.
func auditRecords(t *testing.T, g *testGateway, want int) []bus.UsageMsg {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleAudit)
	var out []bus.UsageMsg
	bustest.Eventually(t, 10*time.Second, fmt.Sprintf("%d audit records", want), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out = nil
		if err := bus.ReadAudit(ctx, nc, bus.SubjectAuditAll, bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			out = append(out, m)
			return nil
		}); err != nil {
			return err
		}
		return bustest.AtLeast("audit records", len(out), want)
	})
	for _, m := range out {
		recordBody(m.Data) // the suite's secret scan covers records too
	}
	if len(out) != want {
		for _, m := range out {
			t.Logf("record: %s", m.Data)
		}
		t.Fatalf("audit stream has %d records, want %d", len(out), want)
	}
	return out
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// With audit on, every tools/call through the gateway is one record naming
// the caller (never its key), the server, the tool, the arguments' hash and
// the outcome, under the request id the gateway logged; a call the tool
// filter refuses is recorded as denied; other methods are not recorded.
func TestAuditRecordsToolCalls(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_audit: {enabled: true}
mcp_servers:
  a: {url: %q, disallowed_tools: [slow], auth_type: bearer_token, auth_value: audit-upstream-secret-0123}
`, master, a), nil)
	status, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "sec"})
	teamID, _ := team["team_id"].(string)
	if status != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: HTTP %d %v", status, team)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "audited-bot", "team_id": teamID, "user_id": "ana"})
	cs, err := connect(t, g.URL()+"/mcp/a", bearer(key))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"b": 2, "a": 1}}); err != nil || res.IsError {
		t.Fatalf("add: %v %+v", err, res)
	}
	if _, err := cs.ListTools(ctx, nil); err != nil { // no record: not a tools/call
		t.Fatal(err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{}}); err == nil {
		t.Fatal("a disallowed tool was called")
	}
	msgs := auditRecords(t, g, 2)
	type want struct{ tool, outcome, args, code string }
	for i, w := range []want{{"add", bus.AuditOK, `{"a":1,"b":2}`, ""}, {"slow", bus.AuditDenied, `{}`, bus.ErrToolNotAllowed.Code}} {
		m := msgs[i] // one worker replica publishes in call order
		var r bus.AuditRecord
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		if r.Server != "a" || r.Tool != w.tool || r.Method != "tools/call" || r.Outcome != w.outcome || r.ErrorCode != w.code ||
			r.KeyID != bus.HashKey(key) || r.KeyAlias != "audited-bot" || r.User != "ana" || r.Team != teamID ||
			r.IPClass != bus.Internal || r.ArgumentsSHA256 != sha256Hex(w.args) || r.Arguments != nil || r.DurationMS <= 0 {
			t.Errorf("record %d: %s", i, m.Data)
		}
		if (r.UpstreamMS > 0) != (w.outcome == bus.AuditOK) {
			t.Errorf("record %d: upstream_ms %v for outcome %s", i, r.UpstreamMS, r.Outcome)
		}
		if m.Subject != bus.AuditSubject("a", w.outcome) || m.Header.Get(nats.MsgIdHdr) != r.RequestID {
			t.Errorf("record %d on %s, msg id %q", i, m.Subject, m.Header.Get(nats.MsgIdHdr))
		}
		if r.RequestID == "" || !strings.Contains(g.logs.String(), "request_id="+r.RequestID) {
			t.Errorf("record %d: request_id %q is not a request the gateway logged", i, r.RequestID)
		}
		for _, secret := range []string{key, master, "audit-upstream-secret-0123"} {
			if strings.Contains(string(m.Data), secret) {
				t.Errorf("record %d holds a credential: %s", i, m.Data)
			}
		}
	}
	assertNoSecrets(t, g, key, "audit-upstream-secret-0123")
}

// arguments: full keeps the arguments themselves (canonical), bounded.
func TestAuditFullArguments(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf("general_settings:\n  master_key: %s\n  mcp_audit: {enabled: true, arguments: full}\nmcp_servers: {a: {url: %q}}\n", master, a), nil)
	cs, err := connect(t, g.URL()+"/mcp/a", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hello"}}); err != nil {
		t.Fatal(err)
	}
	var r bus.AuditRecord
	if err := json.Unmarshal(auditRecords(t, g, 1)[0].Data, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Arguments) != `{"text":"hello"}` || r.ArgumentsSHA256 != sha256Hex(`{"text":"hello"}`) || r.KeyID != "master" {
		t.Errorf("record: %+v", r)
	}
}

// With audit off (the default) no record is published, and there is no
// audit stream.
func TestAuditOffPublishesNothing(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}}\n", master, a), nil)
	nc := testConn(t, g.Gateway)
	seen, err := nc.SubscribeSync(bus.SubjectAuditAll)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	cs, err := connect(t, g.URL()+"/mcp/a", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}
	// The call's usage event is published with its audit record, if any,
	// from the same place: once it is stored a record would have arrived.
	usageEvents(t, g, 1)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := seen.Pending(); n > 0 {
		if m, err := seen.NextMsg(time.Second); err == nil {
			t.Errorf("audit off, yet %d records were published, one on %s: %s", n, m.Subject, m.Data)
		}
	}
	js, err := jetstreamFor(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(context.Background(), bus.StreamAudit); err == nil {
		t.Error("audit off, yet the audit stream was created")
	}
}

// On the bus, a worker user limited to server a may publish a's audit
// records and not b's (it cannot forge another server's audit trail), and
// a dashboard (usage role) may not read the audit stream.
func TestAuditBusPermissions(t *testing.T) {
	_, url := busGateway(t)
	nc, v := tcpAs(t, url, "worker-a", busTestPassword)
	if err := nc.Publish(bus.AuditSubject("a", bus.AuditOK), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(bus.AuditSubject("b", bus.AuditOK), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	select { // the server reports violations in order: a's publish made none
	case err := <-v:
		if !strings.Contains(err.Error(), bus.AuditSubject("b", bus.AuditOK)) {
			t.Errorf("first violation: %v", err)
		}
	case <-time.After(30 * time.Second): // only a violation never reported gets here
		t.Error("worker-a published server b's audit record")
	}
	dash, dv := tcpAs(t, url, "dashboard", busTestPassword)
	if err := dash.Publish("$JS.API.STREAM.MSG.GET."+bus.StreamAudit, []byte(`{"seq":1}`)); err != nil {
		t.Fatal(err)
	}
	dv.expect(t, "a usage reader getting an audit record", "$JS.API.STREAM.MSG.GET."+bus.StreamAudit)
}

// A tools/call refused before any worker sees it, for a server the caller
// may not use (the team's servers, or an internal-only server named by an
// external caller), is recorded too, by the router: denied, with the
// refusal's code, the caller and the arguments. A server that does not
// exist is nobody's trail.
func TestAuditRecordsRouterRefusals(t *testing.T) {
	pub, _ := upstream(t, "pub")
	other, _ := upstream(t, "other")
	priv, _ := upstream(t, "priv")
	// The test client is on 127.0.0.1; only 10/8 counts as internal here.
	g := startGateway(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_stateless_protocol: true
  mcp_internal_ip_ranges: ["10.0.0.0/8"]
  external_routes: [mcp, admin]
  mcp_audit: {enabled: true, arguments: full}
mcp_servers:
  pub: {url: %q, available_on_public_internet: true}
  other: {url: %q, available_on_public_internet: true}
  priv: {url: %q}
`, master, pub, other, priv), nil)
	status, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "ops", "mcp_servers": []string{"pub"}})
	teamID, _ := team["team_id"].(string)
	if status != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: HTTP %d %v", status, team)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "ops-bot", "team_id": teamID})
	call := func(k, server string) modernResponse {
		h := http.Header{"Authorization": {"Bearer " + k}, "Mcp-Protocol-Version": {bus.FirstModernVersion},
			"Mcp-Method": {"tools/call"}, "Mcp-Name": {"echo"}}
		return modernRaw(t, g.URL()+"/mcp/"+server, h, modernBody("tools/call", `{"name":"echo","arguments":{"text":"drop table"}}`, `"2026-07-28"`))
	}
	for _, c := range []struct{ key, server, code string }{
		{key, "other", bus.ErrNotPermitted.Code},
		{master, "priv", bus.ErrUnknownServer.Code},
		{master, "nosuch", bus.ErrUnknownServer.Code},
		{key, "pub", ""},
	} {
		r := call(c.key, c.server)
		if got, _ := r.err.Data["mcpbus_code"].(string); got != c.code {
			t.Fatalf("tools/call on %s: HTTP %d %s, want code %q", c.server, r.status, r.body, c.code)
		}
	}
	byServer := map[string]bus.AuditRecord{}
	for _, m := range auditRecords(t, g, 3) {
		var r bus.AuditRecord
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		byServer[r.Server] = r
	}
	if r := byServer["other"]; r.Outcome != bus.AuditDenied || r.ErrorCode != bus.ErrNotPermitted.Code || r.KeyAlias != "ops-bot" ||
		r.KeyID != bus.HashKey(key) || r.Team != teamID || r.Tool != "echo" || string(r.Arguments) != `{"text":"drop table"}` || r.IPClass != bus.External {
		t.Errorf("the refusal of a server the team may not use: %+v", r)
	}
	if r := byServer["priv"]; r.Outcome != bus.AuditDenied || r.ErrorCode != bus.ErrUnknownServer.Code || r.KeyID != "master" || r.IPClass != bus.External {
		t.Errorf("the refusal of an internal-only server to an external caller: %+v", r)
	}
	if r := byServer["pub"]; r.Outcome != bus.AuditOK {
		t.Errorf("the permitted call: %+v", r)
	}
}
