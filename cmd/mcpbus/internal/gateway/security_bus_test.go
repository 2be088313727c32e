package gateway

// Security suite, attack 5: the embedded NATS listener had no
// authentication. A local program with no credentials read every upstream
// secret from mcpbus_servers, sent forged envelopes straight to a worker,
// minted a key through auth.key.generate, and wrote a stdio record with
// "source":"config" that ran /bin/sh on the next initialize. Now every
// connection authenticates, each user may use only its role's subjects
// (bus/natsauth.go), credentials are sealed at rest (bus/secrets.go), and a
// worker runs only a command its own config file names (stdio_trust.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const busTestPassword = "bus-test-password-0123456789"

// busGateway listens for NATS on loopback, with a worker user limited to
// server a and a dashboard user, as an operator would configure them.
func busGateway(t *testing.T) (*testGateway, string) {
	t.Helper()
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_bus_users:
    - {user: worker-a, password: os.environ/BUS_PW, roles: [workers], servers: [a]}
    - {user: dashboard, password: os.environ/BUS_PW, roles: [usage]}
mcp_servers:
  a: {url: %q, auth_type: bearer_token, auth_value: literal-upstream-secret-a}
  b: {url: %q, auth_type: api_key, auth_value: os.environ/B_KEY, static_headers: {X-Static: literal-static-secret}}
`, master, a, b), map[string]string{"BUS_PW": busTestPassword, "B_KEY": "env-upstream-secret-b"}, func(o *Options) { o.NATSListen = "127.0.0.1:0" })
	registerSecret("literal-upstream-secret-a", "literal-static-secret")
	return g, g.NATSURL()
}

// violations collects a connection's asynchronous errors.
type violations chan error

func (v violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	select {
	case v <- err:
	default:
	}
}

// expect waits for a permission violation naming subject.
func (v violations) expect(t *testing.T, what, subject string) {
	t.Helper()
	deadline := time.After(30 * time.Second) // only a violation never reported gets here
	for {
		select {
		case err := <-v:
			if strings.Contains(strings.ToLower(err.Error()), "permissions violation") && strings.Contains(err.Error(), subject) {
				return
			}
		case <-deadline:
			t.Errorf("%s: no permission violation for %q", what, subject)
			return
		}
	}
}

func tcpAs(t *testing.T, url, user, password string) (*nats.Conn, violations) {
	t.Helper()
	v := make(violations, 64)
	opts := []nats.Option{nats.UserInfo(user, password), nats.ErrorHandler(v.handler), nats.CustomInboxPrefix(bus.InboxPrefix(user))}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, v
}

func TestSecurityBusNeedsCredentials(t *testing.T) {
	_, url := busGateway(t)
	for what, opts := range map[string][]nats.Option{
		"no credentials":         nil,
		"wrong password":         {nats.UserInfo("worker-a", "not-the-password-at-all")},
		"unknown user":           {nats.UserInfo("root", busTestPassword)},
		"an in-process user":     {nats.UserInfo("mcpbus-registry", busTestPassword)},
		"the password, no user":  {nats.Token(busTestPassword)},
		"test user over the net": {nats.UserInfo("nobody", "")},
	} {
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Errorf("%s: joined the bus", what)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v, want an authorization violation", what, err)
		}
	}
}

// A worker's user serves its servers' subjects and nothing an attacker wants.
func TestSecurityBusWorkerUserIsConfined(t *testing.T) {
	g, url := busGateway(t)
	nc, v := tcpAs(t, url, "worker-a", busTestPassword)
	js, _ := jetstream.New(nc)
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return c
	}

	// Mint a key: refused, and no key appears.
	gen, _ := json.Marshal(map[string]any{"key_alias": "minted"})
	if _, err := nc.Request(bus.SubjectKeyGenerate, gen, time.Second); err == nil {
		t.Error("a worker minted a key")
	}
	v.expect(t, "auth.key.generate", bus.SubjectKeyGenerate)
	if _, list := admin(t, g.URL(), http.MethodGet, "/key/list?return_full_object=true", nil); strings.Contains(fmt.Sprint(list), "minted") {
		t.Errorf("a key was minted: %v", list)
	}
	// Read the keys and teams: refused.
	for _, bucket := range []string{bus.BucketKeys, bus.BucketTeams} {
		if _, err := js.KeyValue(ctx(), bucket); err == nil {
			t.Errorf("a worker opened %s", bucket)
		}
		v.expect(t, "read "+bucket, "$JS.API.STREAM.INFO.KV_"+bucket)
	}
	// Write a server record: refused, the record unchanged.
	kv, err := js.KeyValue(ctx(), bus.BucketServers)
	if err != nil {
		t.Fatalf("a worker cannot read the servers it serves: %v", err)
	}
	forged, _ := json.Marshal(bus.ServerSpec{Name: "a", URL: "http://127.0.0.1:1/evil", Source: "config"})
	if _, err := kv.Put(ctx(), "a", forged); err == nil {
		t.Error("a worker wrote a server record")
	}
	v.expect(t, "write a server", "$KV."+bus.BucketServers+".a")
	// Change the bucket's limits (which could drop records): refused.
	if _, err := js.UpdateKeyValue(ctx(), jetstream.KeyValueConfig{Bucket: bus.BucketServers, History: 1}); err == nil {
		t.Error("a worker changed the servers bucket")
	}
	v.expect(t, "update the servers bucket", "$JS.API.STREAM.UPDATE.KV_"+bus.BucketServers)
	// Reach a worker directly, with a forged internal envelope: refused.
	env := bus.Envelope{RequestID: "forged", Caller: bus.Identity{KeyID: "master", Admin: true, Permissions: bus.Permissions{AllServers: true}}, IPClass: bus.Internal}
	call := &nats.Msg{Subject: bus.ToolRPC("b"), Header: env.Header(), Data: []byte(rpc("tools/call", 1, `{"name":"echo","arguments":{"text":"x"}}`))}
	if _, err := nc.RequestMsg(call, time.Second); err == nil {
		t.Error("a worker's user reached another worker")
	}
	v.expect(t, "tool rpc", bus.ToolRPC("b"))
	// Serve a server it was not given: refused.
	if _, err := nc.Subscribe(bus.ToolRPC("b"), func(*nats.Msg) {}); err == nil {
		v.expect(t, "serve b", bus.ToolRPC("b"))
	}
	// Read other services' replies and the wide subjects: refused.
	for _, subject := range []string{">", "_INBOX.>", bus.InboxPrefix("mcpbus-ingress") + ".>", bus.InboxPrefix("mcpbus-auth") + ".>", bus.SubjectAuthVerify, bus.SubjectRouterRPC} {
		if _, err := nc.Subscribe(subject, func(*nats.Msg) {}); err == nil {
			v.expect(t, "subscribe "+subject, subject)
		}
	}
	// Announce a revocation, impersonate auth: refused.
	_ = nc.Publish(bus.SubjectKeyRevoked, []byte("master"))
	v.expect(t, "revoke", bus.SubjectKeyRevoked)
	// What it is for still works: its server's subject.
	if _, err := nc.Subscribe(bus.ToolRPC("a"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-v:
		if strings.Contains(err.Error(), bus.ToolRPC("a")) {
			t.Errorf("a worker may not serve its own server: %v", err)
		}
	case <-time.After(200 * time.Millisecond): // real time: a violation not reported has no event to wait for
	}
}

// A dashboard reads usage and nothing else; the servers bucket, as anyone who
// may read it (router, ingress) sees it, holds no credential.
func TestSecurityBusDashboardAndSealedRecords(t *testing.T) {
	g, url := busGateway(t)
	h := initSession(t, g.URL()+"/mcp/a", bearer(master))
	post(t, g.URL()+"/mcp/a", h, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"x"}}`))

	nc, v := tcpAs(t, url, "dashboard", busTestPassword)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := 0
	bustest.Eventually(t, 10*time.Second, "the dashboard reads the call's usage event", func() error {
		err := bus.ReadUsage(ctx, nc, bus.SubjectUsageAll, bus.UsageStart{}, false, func(bus.UsageMsg) error { events++; return nil })
		if err != nil {
			t.Fatalf("a dashboard cannot read usage: %v", err)
		}
		return bustest.AtLeast("usage events read", events, 1)
	})
	// It reads without a consumer: one could deliver the stream to any
	// subject (the deliver subject is not checked against permissions).
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	defer ccancel()
	if _, err := js.OrderedConsumer(cctx, bus.StreamUsage, jetstream.OrderedConsumerConfig{}); err == nil {
		t.Error("a dashboard created a consumer on the usage stream")
	}
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := js.KeyValue(sctx, bus.BucketServers); err == nil {
		t.Error("a dashboard opened the servers bucket")
	}
	v.expect(t, "servers bucket", "$JS.API.STREAM.INFO.KV_"+bus.BucketServers)
	if _, err := nc.Request(bus.SubjectAuthVerify, []byte(`{}`), time.Second); err == nil {
		t.Error("a dashboard asked auth")
	}
	v.expect(t, "auth.verify", bus.SubjectAuthVerify)

	// Every record as a full reader of the bucket sees it: no credential,
	// neither literal in the config file nor written through the API.
	status, _ := admin(t, g.URL(), http.MethodPost, "/v1/mcp/server", map[string]any{"server_name": "api-made", "url": "http://127.0.0.1:1/mcp?token=api-url-secret",
		"auth_type": "bearer_token", "auth_value": "api-made-secret-value"})
	if status != http.StatusOK {
		t.Fatalf("POST /v1/mcp/server: HTTP %d", status)
	}
	registerSecret("api-made-secret-value", "api-url-secret")
	tap := testConn(t, g.Gateway)
	tjs, _ := jetstream.New(tap)
	kv, err := tjs.KeyValue(ctx, bus.BucketServers)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "api-made"} {
		e, err := kv.Get(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, secret := range []string{"literal-upstream-secret-a", "literal-static-secret", "api-made-secret-value", "api-url-secret"} {
			if strings.Contains(string(e.Value()), secret) {
				t.Errorf("record %s holds a credential in plain text (%.6s…): %s", name, secret, e.Value())
			}
		}
	}
	// The gateway itself still uses them: a call on a reaches its upstream.
	if r := post(t, g.URL()+"/mcp/a", h, rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"sealed"}}`)); !strings.Contains(string(r.body), "sealed") {
		t.Fatalf("call with a sealed credential: %s", r.body)
	}
}

// A record on the bus cannot make a worker run a command no config file
// named: not a new stdio server claiming "source":"config", not a config
// stdio server whose command, args or env were changed in the bucket.
func TestSecurityBusRecordCannotRunACommand(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	demoEnv := map[string]string{"MCPBUS_GATEWAY_TEST_DEMO_STDIO": "1"}
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  local: {transport: stdio, command: %q, env: {MCPBUS_GATEWAY_TEST_DEMO_STDIO: "1"}}
`, master, os.Args[0]), nil)
	if r := post(t, g.URL()+"/mcp/local", bearer(master), initBody); r.status != http.StatusOK {
		t.Fatalf("the config's own stdio server: HTTP %d %s", r.status, r.body)
	}
	tap := testConn(t, g.Gateway)
	js, _ := jetstream.New(tap)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketServers)
	if err != nil {
		t.Fatal(err)
	}
	shell := []string{"-c", "touch " + marker}
	withPreload := map[string]string{"MCPBUS_GATEWAY_TEST_DEMO_STDIO": "1", "LD_PRELOAD": marker}
	for _, spec := range []bus.ServerSpec{
		{Name: "sneaky", Transport: "stdio", Command: "/bin/sh", Args: shell, Source: "config"},
		{Name: "local", Transport: "stdio", Command: "/bin/sh", Args: shell, Env: demoEnv, Source: "config"},
		{Name: "local", Transport: "stdio", Command: os.Args[0], Args: []string{"-test.run=^$"}, Env: demoEnv, Source: "config"},
		{Name: "local", Transport: "stdio", Command: os.Args[0], Env: withPreload, Source: "config"},
	} {
		refusals := strings.Count(g.logs.String(), "stdio servers run a command on this host")
		putServer(t, kv, spec)
		bustest.Eventually(t, 10*time.Second, "the worker manager refuses the record of "+spec.Name, func() error {
			return bustest.AtLeast("refusals logged", strings.Count(g.logs.String(), "stdio servers run a command on this host"), refusals+1)
		})
		// No worker serves it: the session's calls fail. (The ingress's
		// registry cache follows the bucket on its own: wait until it knows
		// the record before opening the session.)
		bustest.Eventually(t, 10*time.Second, "the ingress knows the record of "+spec.Name, func() error {
			if r := post(t, g.URL()+"/mcp/"+spec.Name, bearer(master), initBody); r.status != http.StatusOK {
				return fmt.Errorf("initialize: HTTP %d %s", r.status, r.body)
			}
			return nil
		})
		h := initSession(t, g.URL()+"/mcp/"+spec.Name, bearer(master))
		if r := post(t, g.URL()+"/mcp/"+spec.Name, h, rpc("tools/list", 2, "")); r.rpcErr.Code == 0 {
			t.Errorf("%s (%s %v %v): a forged record is served: %s", spec.Name, spec.Command, spec.Args, spec.Env, r.body)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("a record on the bus ran a command: %s exists", marker)
		}
	}
}

// JetStream cannot carry a worker or a dashboard past its permissions: a
// consumer's deliver subject and a stream's subjects are not checked against
// them, so neither may create one. A worker limited to a sends to clients
// only as a, reads only a's record and the answers to a's requests.
func TestSecurityBusJetStreamAndSenderConfinement(t *testing.T) {
	_, url := busGateway(t)
	worker, wv := tcpAs(t, url, "worker-a", busTestPassword)
	dash, dv := tcpAs(t, url, "dashboard", busTestPassword)
	request := func(nc *nats.Conn, subject string, body any) error {
		data, _ := json.Marshal(body)
		_, err := nc.Request(subject, data, time.Second)
		return err
	}

	// A consumer delivering the servers bucket to auth.key.generate (each
	// record would mint a key), or the usage stream to a worker's subject.
	deliver := map[string]any{"stream_name": "KV_" + bus.BucketServers, "config": map[string]any{"deliver_subject": bus.SubjectKeyGenerate, "ack_policy": "none"}}
	if err := request(worker, "$JS.API.CONSUMER.CREATE.KV_"+bus.BucketServers, deliver); err == nil {
		t.Error("a worker created a consumer")
	}
	wv.expect(t, "worker consumer", "$JS.API.CONSUMER.CREATE.KV_"+bus.BucketServers)
	deliver = map[string]any{"stream_name": bus.StreamUsage, "config": map[string]any{"deliver_subject": bus.ToolRPC("b"), "ack_policy": "none"}}
	if err := request(dash, "$JS.API.CONSUMER.CREATE."+bus.StreamUsage, deliver); err == nil {
		t.Error("a dashboard created a consumer")
	}
	dv.expect(t, "dashboard consumer", "$JS.API.CONSUMER.CREATE."+bus.StreamUsage)
	// A stream capturing auth's subject, or the usage stream changed to.
	capture := map[string]any{"name": "CAPTURE", "subjects": []string{bus.SubjectAuthVerify}}
	if err := request(worker, "$JS.API.STREAM.CREATE.CAPTURE", capture); err == nil {
		t.Error("a worker created a stream")
	}
	wv.expect(t, "worker stream", "$JS.API.STREAM.CREATE.CAPTURE")
	capture = map[string]any{"name": bus.StreamUsage, "subjects": []string{bus.SubjectUsageAll, bus.SubjectAuthVerify}}
	if err := request(dash, "$JS.API.STREAM.UPDATE."+bus.StreamUsage, capture); err == nil {
		t.Error("a dashboard changed the usage stream")
	}
	dv.expect(t, "dashboard stream update", "$JS.API.STREAM.UPDATE."+bus.StreamUsage)

	// Pose as b to a session or a POST's stream: refused; as a: allowed.
	for _, base := range []string{bus.SessionSubject("some-session"), bus.StreamSubject("some-ingress", "1s")} {
		_ = worker.Publish(bus.ClientSubject(base, "b"), []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"as b"}}`))
		wv.expect(t, "pose as b", bus.ClientSubject(base, "b"))
		_ = worker.Publish(bus.ClientSubject(base, bus.GatewayToken), []byte(`{}`))
		wv.expect(t, "pose as the gateway", bus.ClientSubject(base, bus.GatewayToken))
	}
	// Read the clients' answers to b's requests, b's record, b's token.
	for _, subject := range []string{bus.ServerRequestSubjects("b", "*"), "$KV." + bus.BucketServers + ".b", "$KV." + bus.BucketOAuthTokens + ".b"} {
		if _, err := worker.Subscribe(subject, func(*nats.Msg) {}); err == nil {
			wv.expect(t, "subscribe "+subject, subject)
		}
	}
	// Put a list of its own making in b's place in the lists the replicas
	// share (toolworkers/shared_lists.go): refused.
	_ = worker.Publish("$KV."+bus.BucketLists+".b.tools", []byte(`{"until":0,"result":{"tools":[]}}`))
	wv.expect(t, "write b's shared list", "$KV."+bus.BucketLists+".b.tools")
	for _, subject := range []string{
		"$JS.API.DIRECT.GET.KV_" + bus.BucketServers + ".$KV." + bus.BucketServers + ".b",
		"$JS.API.DIRECT.GET.KV_" + bus.BucketServers, // a batch reads past a
	} {
		if err := request(worker, subject, map[string]any{"multi_last": []string{"$KV." + bus.BucketServers + ".>"}}); err == nil {
			t.Errorf("a worker limited to a read %s", subject)
		}
		wv.expect(t, "read "+subject, subject)
	}
	// What it is for still works: a's record, and sending as a.
	m, err := worker.Request("$JS.API.DIRECT.GET.KV_"+bus.BucketServers+".$KV."+bus.BucketServers+".a", nil, 5*time.Second)
	if err != nil || m.Header.Get("Status") != "" || !strings.Contains(string(m.Data), `"a"`) {
		t.Fatalf("a worker cannot read its own server's record: %v", err)
	}
	// Then a refused publish as a marker: violations come in order, so the
	// first one reported must be the marker's.
	_ = worker.Publish(bus.ClientSubject(bus.SessionSubject("some-session"), "a"), []byte(`{}`))
	_ = worker.Publish(bus.SubjectKeyRevoked, []byte("marker"))
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := <-wv; !strings.Contains(err.Error(), bus.SubjectKeyRevoked) {
		t.Errorf("a worker's own work was refused: %v", err)
	}
}

// NATS does not check a request's reply subject, and JetStream answers to
// it: any bus user can have an answer published anywhere, where a stream may
// store it. No such answer forges a key, a team or a server record, or makes
// auth act: a worker may not direct-get what it writes (its token record
// would come back raw), every other answer is JetStream's own JSON, records
// that do not name their key are ignored, and admin subjects want a reply.
func TestSecurityBusReflectedAnswersForgeNothing(t *testing.T) {
	g, url := busGateway(t)
	worker, wv := tcpAs(t, url, "worker-a", busTestPassword)
	dash, _ := tcpAs(t, url, "dashboard", busTestPassword)
	forgedKey := "sk-forged-by-reflection-0123456789"
	hash := bus.HashKey(forgedKey)
	registerSecret(forgedKey)
	_, before := admin(t, g.URL(), http.MethodGet, "/key/list", nil)

	// The worker writes a key record as its token record (it may write that
	// key), then asks for it back with the keys bucket as the reply subject.
	record, _ := json.Marshal(bus.KeyRecord{Token: hash, KeyAlias: "forged", MCPServers: []string{"a", "b"}, CreatedAt: time.Now()})
	if _, err := worker.Request("$KV."+bus.BucketOAuthTokens+".a", record, 5*time.Second); err != nil {
		t.Fatal(err) // stored once acknowledged
	}
	direct := "$JS.API.DIRECT.GET.KV_" + bus.BucketOAuthTokens + ".$KV." + bus.BucketOAuthTokens + ".a"
	_ = worker.PublishRequest(direct, "$KV."+bus.BucketKeys+"."+hash, nil)
	wv.expect(t, "direct get of its own record", direct)
	get, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bus.BucketOAuthTokens + ".a"})
	for _, reply := range []string{"$KV." + bus.BucketKeys + "." + hash, "$KV." + bus.BucketTeams + ".t-forged", bus.SubjectKeyGenerate} {
		if err := worker.PublishRequest("$JS.API.STREAM.MSG.GET.KV_"+bus.BucketOAuthTokens, reply, get); err != nil {
			t.Fatal(err)
		}
	}
	// A dashboard has JetStream's account info written over server a's record.
	if err := dash.PublishRequest("$JS.API.INFO", "$KV."+bus.BucketServers+".a", nil); err != nil {
		t.Fatal(err)
	}
	for _, nc := range []*nats.Conn{worker, dash} {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Each reflected answer is seen and set aside, as the log says, before
	// anything below is checked.
	for _, line := range []string{
		"auth: ignoring a key record that does not name its key",
		"auth: ignoring a team record that does not name its team",
		"auth: ignored an admin message that is no request",
		`registry: ignoring a server record; the server keeps its last good one" key=a`,
	} {
		bustest.Eventually(t, 30*time.Second, "the gateway logs "+line, func() error {
			if !strings.Contains(g.logs.String(), line) {
				return fmt.Errorf("not in the log:\n%s", g.logs.String())
			}
			return nil
		})
	}

	if r := post(t, g.URL()+"/mcp/a", bearer(forgedKey), initBody); r.status != http.StatusUnauthorized {
		t.Errorf("a key written by reflection: HTTP %d %s, want 401", r.status, r.body)
	}
	if _, after := admin(t, g.URL(), http.MethodGet, "/key/list", nil); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("keys changed: %v, then %v", before, after)
	}
	h := initSession(t, g.URL()+"/mcp/a", bearer(master))
	if r := post(t, g.URL()+"/mcp/a", h, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"still here"}}`)); !strings.Contains(string(r.body), "still here") {
		t.Errorf("server a after its record was overwritten: %s", r.body)
	}
}
