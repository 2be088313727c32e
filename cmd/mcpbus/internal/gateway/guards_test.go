package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

// guardEcho calls the demo upstream's echo tool with text through cs and
// returns the text it answered, or the JSON-RPC error.
func guardEcho(t *testing.T, cs *mcp.ClientSession, text string) (string, *jsonrpc.Error) {
	t.Helper()
	res, err := cs.CallTool(callCtx(t), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": text}})
	if err != nil {
		var we *jsonrpc.Error
		if !errors.As(err, &we) {
			t.Fatalf("echo %q: %v", text, err)
		}
		return "", we
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("echo %q: %+v", text, res)
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// mcpbusCode is a JSON-RPC error's data.mcpbus_code: the stable name of
// an mcpbus error, the same whatever the era's numeric code.
func mcpbusCode(e *jsonrpc.Error) string {
	var d struct {
		Code string `json:"mcpbus_code"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return d.Code
}

// guardAudit reads want audit records in call order.
func guardAudit(t *testing.T, g *testGateway, want int) []bus.AuditRecord {
	t.Helper()
	var out []bus.AuditRecord
	for _, m := range auditRecords(t, g, want) {
		var r bus.AuditRecord
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func guardsOf(r bus.AuditRecord) string {
	var s []string
	for _, d := range r.Guards {
		s = append(s, d.Name+"/"+d.Phase+"/"+d.Decision)
	}
	return strings.Join(s, ",")
}

// Built-in guards, configured in LiteLLM's guardrails list: a blocked
// argument pattern refuses the call naming the guard, a size limit refuses
// a large one, a mask hides an AWS access key in the result; default_on
// guards run on every server, the others only where a server names them;
// the audit record holds each decision.
func TestGuardsBuiltIn(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_audit: {enabled: true}
guardrails:
  - guardrail_name: no-rm
    litellm_params: {guardrail: mcpbus_block_patterns, mode: pre_mcp_call, patterns: ['rm\s+-rf']}
  - guardrail_name: small
    litellm_params: {guardrail: mcpbus_size_limit, mode: pre_mcp_call, max_bytes: 200}
  - guardrail_name: mask-secrets
    litellm_params: {guardrail: mcpbus_mask, mode: post_mcp_call, default_on: true, presets: [aws_access_key, email]}
mcp_servers:
  a: {url: %q, guardrails: [no-rm, small]}
  b: {url: %q}
`, master, a, a), nil)
	cs, err := connect(t, g.URL()+"/mcp/a", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if got, e := guardEcho(t, cs, "hello"); e != nil || got != "hello" {
		t.Fatalf("a plain call: %q %v", got, e)
	}
	_, e := guardEcho(t, cs, "please rm  -rf / now")
	if e == nil || mcpbusCode(e) != bus.ErrGuardBlocked.Code || !strings.Contains(e.Message, `guard "no-rm" blocked the call: a string in the arguments matches patterns[0]`) {
		t.Fatalf("a blocked pattern: %v", e)
	}
	_, e = guardEcho(t, cs, strings.Repeat("x", 300))
	if e == nil || mcpbusCode(e) != bus.ErrGuardBlocked.Code || !strings.Contains(e.Message, `guard "small" blocked the call: the arguments are 311 bytes, over the limit of 200`) {
		t.Fatalf("an argument over the size limit: %v", e)
	}
	got, e := guardEcho(t, cs, "key AKIAIOSFODNN7EXAMPLE for ops@example.com")
	if e != nil || got != "key [MASKED:aws_access_key] for [MASKED:email]" {
		t.Fatalf("a result with an AWS key and an email: %q %v", got, e)
	}
	// b names no guard: only the default_on mask runs there.
	csb, err := connect(t, g.URL()+"/mcp/b", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if got, e := guardEcho(t, csb, "rm -rf AKIAIOSFODNN7EXAMPLE"); e != nil || got != "rm -rf [MASKED:aws_access_key]" {
		t.Fatalf("on b: %q %v", got, e)
	}

	recs := guardAudit(t, g, 5)
	want := []struct{ outcome, code, guards string }{
		{bus.AuditOK, "", "no-rm/request/pass,small/request/pass,mask-secrets/result/pass"},
		{bus.AuditDenied, bus.ErrGuardBlocked.Code, "no-rm/request/block"},
		{bus.AuditDenied, bus.ErrGuardBlocked.Code, "no-rm/request/pass,small/request/block"},
		{bus.AuditOK, "", "no-rm/request/pass,small/request/pass,mask-secrets/result/modify"},
	}
	for i, w := range want {
		r := recs[i]
		if r.Server != "a" || r.Outcome != w.outcome || r.ErrorCode != w.code || guardsOf(r) != w.guards {
			t.Errorf("record %d: %s %s %s, guards %s; want %+v", i, r.Server, r.Outcome, r.ErrorCode, guardsOf(r), w)
		}
	}
	if d := recs[3].Guards; len(d) != 3 || d[2].Reason != "masked aws_access_key×1, email×1" {
		t.Errorf("the mask's decisions: %+v", d)
	}
	if r := recs[4]; r.Server != "b" || guardsOf(r) != "mask-secrets/result/modify" {
		t.Errorf("b's record: %s %s", r.Server, guardsOf(r))
	}
}

// guardRequest is what the test's external guard reads: plain JSON, as a
// guard in any language would.
type guardRequest struct {
	Phase     string `json:"phase"`
	RequestID string `json:"request_id"`
	Server    string `json:"server"`
	Tool      string `json:"tool"`
	Caller    struct {
		KeyID    string `json:"key_id"`
		KeyAlias string `json:"key_alias"`
		IPClass  string `json:"ip_class"`
	} `json:"caller"`
	Arguments struct {
		Text string `json:"text"`
	} `json:"arguments"`
}

// An external guard written with the plain NATS client (nats.Connect as a
// bus user with the guards role, a queue subscription on its subject)
// blocks a call it dislikes, naming itself and its reason, and rewrites the
// arguments of another; it sees the caller's alias and a prefix of its key
// id, never the key.
func TestGuardsExternalGuardBlocksAndModifies(t *testing.T) {
	a, _ := upstream(t, "a")
	const guardPW = "guard-password-0123456789abcdef"
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_audit: {enabled: true}
  mcp_bus_users:
    - {user: policy-guard, password: os.environ/GUARD_PW, roles: [guards]}
guardrails:
  - guardrail_name: policy
    litellm_params: {guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 20s}
mcp_servers:
  a: {url: %q, guardrails: [policy]}
`, master, a), map[string]string{"GUARD_PW": guardPW}, func(o *Options) { o.NATSListen = "127.0.0.1:0" })

	// The guard: another process, in any language with a NATS client.
	nc, err := nats.Connect(g.NATSURL(), nats.UserInfo("policy-guard", guardPW))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var mu sync.Mutex
	var seen []string
	_, err = nc.QueueSubscribe("mcpbus.v1.guard.policy", "policy", func(m *nats.Msg) {
		mu.Lock()
		seen = append(seen, string(m.Data))
		mu.Unlock()
		var req guardRequest
		if json.Unmarshal(m.Data, &req) != nil {
			m.Respond([]byte(`{"decision":"block","reason":"unreadable"}`))
			return
		}
		switch text := req.Arguments.Text; {
		case strings.Contains(text, "drop table"):
			m.Respond([]byte(`{"decision":"block","reason":"destructive SQL is not allowed"}`))
		case strings.Contains(text, "internal-hostname"):
			out, _ := json.Marshal(map[string]any{"decision": "modify", "reason": "hostname redacted",
				"arguments": map[string]string{"text": strings.ReplaceAll(text, "internal-hostname", "<host>")}})
			m.Respond(out)
		default:
			m.Respond([]byte(`{"decision":"pass"}`))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	key := generateKey(t, g.URL(), map[string]any{"key_alias": "etl-bot"})
	cs, err := connect(t, g.URL()+"/mcp/a", bearer(key))
	if err != nil {
		t.Fatal(err)
	}
	if got, e := guardEcho(t, cs, "select 1"); e != nil || got != "select 1" {
		t.Fatalf("a call the guard passes: %q %v", got, e)
	}
	_, e := guardEcho(t, cs, "drop table users")
	if e == nil || mcpbusCode(e) != bus.ErrGuardBlocked.Code || e.Message != `guard "policy" blocked the call: destructive SQL is not allowed` {
		t.Fatalf("a call the guard blocks: %v", e)
	}
	if got, e := guardEcho(t, cs, "ping internal-hostname"); e != nil || got != "ping <host>" {
		t.Fatalf("a call the guard modifies: %q %v", got, e)
	}

	mu.Lock()
	asked := append([]string(nil), seen...)
	mu.Unlock()
	if len(asked) != 3 {
		t.Fatalf("the guard was asked %d times", len(asked))
	}
	var req guardRequest
	if err := json.Unmarshal([]byte(asked[1]), &req); err != nil {
		t.Fatal(err)
	}
	if req.Phase != "request" || req.Server != "a" || req.Tool != "echo" || req.RequestID == "" || req.Arguments.Text != "drop table users" ||
		req.Caller.KeyAlias != "etl-bot" || req.Caller.KeyID != bus.HashKey(key)[:12] || req.Caller.IPClass != "internal" {
		t.Errorf("the guard was asked %s", asked[1])
	}
	for _, s := range asked {
		if strings.Contains(s, key) || strings.Contains(s, bus.HashKey(key)) || strings.Contains(s, master) {
			t.Errorf("the guard saw the caller's key or its token: %s", s)
		}
	}
	// The guards role takes guard requests and nothing else: not a
	// worker's calls, nor sending one.
	spy, v := tcpAs(t, g.NATSURL(), "policy-guard", guardPW)
	if _, err := spy.Subscribe(bus.ToolRPC("a"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	v.expect(t, "a guard subscribing to a server's calls", bus.ToolRPC("a"))
	if err := spy.Publish(bus.ToolRPC("a"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	v.expect(t, "a guard sending a server a call", bus.ToolRPC("a"))

	recs := guardAudit(t, g, 3)
	if r := recs[1]; r.Outcome != bus.AuditDenied || r.ErrorCode != bus.ErrGuardBlocked.Code || guardsOf(r) != "policy/request/block" ||
		r.Guards[0].Reason != "destructive SQL is not allowed" || r.RequestID != req.RequestID {
		t.Errorf("the blocked call's record: %+v", r)
	}
	if r := recs[2]; r.Outcome != bus.AuditOK || guardsOf(r) != "policy/request/modify" || r.Guards[0].Reason != "hostname redacted" ||
		r.ArgumentsSHA256 != sha256Hex(`{"text":"ping internal-hostname"}`) {
		t.Errorf("the modified call's record (arguments as the caller sent them): %+v", r)
	}
}

// An external guard that never answers fails its calls closed (an error
// naming it and its timeout, nothing sent upstream) or, with fail: open,
// lets them through and says so in the audit record; a guard nobody
// serves fails the same way.
func TestGuardsExternalTimeoutFailsClosedOrOpen(t *testing.T) {
	a, rec := upstream(t, "a")
	const guardPW = "guard-password-0123456789abcdef"
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_audit: {enabled: true}
  mcp_bus_users:
    - {user: mute-guard, password: os.environ/GUARD_PW, roles: [guards]}
guardrails:
  - guardrail_name: mute-closed
    litellm_params: {guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 150ms}
  - guardrail_name: mute-open
    litellm_params: {guardrail: mcpbus_nats, mode: pre_mcp_call, timeout: 150ms, fail: open}
  - guardrail_name: absent
    litellm_params: {guardrail: mcpbus_nats, mode: post_mcp_call}
mcp_servers:
  closed: {url: %q, guardrails: [mute-closed]}
  open: {url: %q, guardrails: [mute-open]}
  unserved: {url: %q, guardrails: [absent]}
`, master, a, a, a), map[string]string{"GUARD_PW": guardPW}, func(o *Options) { o.NATSListen = "127.0.0.1:0" })
	nc, err := nats.Connect(g.NATSURL(), nats.UserInfo("mute-guard", guardPW))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	for _, name := range []string{"mute-closed", "mute-open"} {
		if _, err := nc.Subscribe("mcpbus.v1.guard."+name, func(*nats.Msg) {}); err != nil { // takes it, never answers
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cs, err := connect(t, g.URL()+"/mcp/closed", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	calls := func() int { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.calls }
	_, e := guardEcho(t, cs, "hi")
	if e == nil || mcpbusCode(e) != bus.ErrGuardUnavailable.Code ||
		e.Message != `guard "mute-closed" did not answer in 150ms; the call was not sent upstream (the guard fails closed)` {
		t.Fatalf("a fail-closed guard that never answers: %v", e)
	}
	if n := calls(); n != 0 {
		t.Fatalf("the upstream got %d tools/call with its guard silent and failing closed", n)
	}
	cso, err := connect(t, g.URL()+"/mcp/open", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if got, e := guardEcho(t, cso, "hi"); e != nil || got != "hi" {
		t.Fatalf("a fail-open guard that never answers: %q %v", got, e)
	}
	csu, err := connect(t, g.URL()+"/mcp/unserved", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	_, e = guardEcho(t, csu, "hi")
	if e == nil || mcpbusCode(e) != bus.ErrGuardUnavailable.Code ||
		e.Message != `guard "absent" no process serves mcpbus.v1.guard.absent; the tool's result was withheld (the guard fails closed)` {
		t.Fatalf("a result guard nobody serves: %v", e)
	}

	recs := guardAudit(t, g, 3)
	if r := recs[0]; r.Server != "closed" || r.Outcome != bus.AuditError || r.ErrorCode != bus.ErrGuardUnavailable.Code ||
		guardsOf(r) != "mute-closed/request/fail_closed" || r.Guards[0].Reason != "did not answer in 150ms" {
		t.Errorf("the fail-closed record: %+v", r)
	}
	if r := recs[1]; r.Server != "open" || r.Outcome != bus.AuditOK || guardsOf(r) != "mute-open/request/fail_open" || r.Guards[0].Reason != "did not answer in 150ms" {
		t.Errorf("the fail-open record: %+v", r)
	}
	if r := recs[2]; r.Server != "unserved" || r.Outcome != bus.AuditError || guardsOf(r) != "absent/result/fail_closed" {
		t.Errorf("the unserved guard's record: %+v", r)
	}
}
