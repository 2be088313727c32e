package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const master = "sk-master-0123456789"

// clock is a settable test clock shared by instances.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	// Ten seconds into a minute, so a test has 50 s of window to work with.
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 10, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type instance struct {
	*service
	nc *nats.Conn
}

// startAuth starts one auth replica on its own connection to ns.
func startAuth(t *testing.T, ns *server.Server, clk *clock) instance {
	t.Helper()
	nc := bustest.Conn(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{MasterKey: master, JetStream: js, ExpiryCheck: 20 * time.Millisecond}
	if clk != nil {
		o.Now = clk.now
	}
	s, svc, err := start(nc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	return instance{s, nc}
}

// call sends an admin request on the bus.
func call(t *testing.T, nc *nats.Conn, subject string, body any) (json.RawMessage, *bus.Error) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case nil:
	default:
		data, _ = json.Marshal(b)
	}
	return callAs(t, nc, subject, masterCaller, data)
}

// masterCaller is the envelope's caller the ingress sends for the master key.
var masterCaller = bus.Identity{KeyID: "master", Alias: "master", Admin: true}

// callAs sends an admin request with caller's envelope, as the ingress does.
func callAs(t *testing.T, nc *nats.Conn, subject string, caller bus.Identity, data []byte) (json.RawMessage, *bus.Error) {
	t.Helper()
	env := bus.Envelope{RequestID: "r", Caller: caller, IPClass: bus.Internal}
	msg, err := nc.RequestMsg(&nats.Msg{Subject: subject, Data: data, Header: env.Header()}, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return nil, e
	}
	return msg.Data, nil
}

func mustCall(t *testing.T, nc *nats.Conn, subject string, body any, out any) {
	t.Helper()
	data, e := call(t, nc, subject, body)
	if e != nil {
		t.Fatalf("%s: %v", subject, e)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %v in %s", subject, err, data)
		}
	}
}

type generated struct {
	Key      string     `json:"key"`
	Token    string     `json:"token"`
	KeyAlias string     `json:"key_alias"`
	TeamID   string     `json:"team_id"`
	Expires  *time.Time `json:"expires"`
	RPMLimit int        `json:"rpm_limit"`
}

func generate(t *testing.T, nc *nats.Conn, body map[string]any) generated {
	t.Helper()
	var g generated
	mustCall(t, nc, bus.SubjectKeyGenerate, body, &g)
	if !strings.HasPrefix(g.Key, "sk-") || g.Token != bus.HashKey(g.Key) {
		t.Fatalf("generate answered %+v", g)
	}
	return g
}

// verifyBus verifies a plaintext key the way the ingress does: by its hash.
func verifyBus(t *testing.T, nc *nats.Conn, key string) (bus.Identity, *bus.Error) {
	t.Helper()
	body, _ := json.Marshal(bus.VerifyRequest{KeyHash: bus.HashKey(key)})
	msg, err := nc.Request(bus.SubjectAuthVerify, body, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return bus.Identity{}, e
	}
	var id bus.Identity
	if err := json.Unmarshal(msg.Data, &id); err != nil {
		t.Fatal(err)
	}
	return id, nil
}

// revocations collects the tokens published on SubjectKeyRevoked.
type revocations struct {
	mu  sync.Mutex
	got []string
}

func watchRevoked(t *testing.T, ns *server.Server) *revocations {
	t.Helper()
	r := &revocations{}
	nc := bustest.Conn(t, ns)
	sub, err := nc.Subscribe(bus.SubjectKeyRevoked, func(m *nats.Msg) {
		r.mu.Lock()
		r.got = append(r.got, string(m.Data))
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *revocations) count(token string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == token {
			n++
		}
	}
	return n
}

// wait fails unless token is revoked within d.
func (r *revocations) wait(t *testing.T, token string, d time.Duration) {
	t.Helper()
	bustest.Eventually(t, d, "revocation of "+prefix(token), func() error {
		if r.count(token) == 0 {
			return fmt.Errorf("revoked so far: %v", r.seen())
		}
		return nil
	})
}

func (r *revocations) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// sync returns once every revocation nc published before it has reached r:
// it publishes a marker on nc and waits for it (NATS keeps one connection's
// messages in order).
func (r *revocations) sync(t *testing.T, nc *nats.Conn) {
	t.Helper()
	marker := fmt.Sprintf("sync-%d", time.Now().UnixNano())
	if err := nc.Publish(bus.SubjectKeyRevoked, []byte(marker)); err != nil {
		t.Fatal(err)
	}
	r.wait(t, marker, 30*time.Second)
}

// known waits until every instance has token, and its team if it has one, in
// its cache (an admin request on the bus may be answered by any replica; the
// others follow by KV watch).
func known(t *testing.T, token string, insts ...instance) {
	t.Helper()
	for _, in := range insts {
		bustest.Eventually(t, 30*time.Second, "replica knows "+prefix(token)+" and its team", func() error {
			in.store.mu.RLock()
			defer in.store.mu.RUnlock()
			k, ok := in.store.keys[token]
			if !ok {
				return errors.New("the key is not in its cache")
			}
			if k.rec.TeamID != "" {
				if _, ok = in.store.teams[k.rec.TeamID]; !ok { // the teams bucket has its own watch
					return fmt.Errorf("its team %q is not in its cache", k.rec.TeamID)
				}
			}
			return nil
		})
	}
}

func TestGenerateThenVerify(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)

	g := generate(t, a.nc, map[string]any{"key_alias": "ci-bot", "mcp_servers": []string{"github"},
		"mcp_tool_permissions": map[string][]string{"github": {"list_issues"}}, "metadata": map[string]any{"owner": "ci"}})
	if g.KeyAlias != "ci-bot" || g.Expires != nil {
		t.Fatalf("generate: %+v", g)
	}
	id, e := verifyBus(t, a.nc, g.Key)
	if e != nil {
		t.Fatalf("verify: %v", e)
	}
	want := bus.Identity{KeyID: g.Token, Alias: "ci-bot",
		Permissions: bus.Permissions{Servers: []string{"github"}, Tools: map[string][]string{"github": {"list_issues"}}, AllModels: true, AllAgents: true}}
	if fmt.Sprint(id) != fmt.Sprint(want) {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
	// The token (what key.info and key.list show) is not a key.
	if _, e := verifyBus(t, a.nc, g.Token); e == nil || e.Kind != bus.ErrUnauthorized || e.Message != "unauthorized: invalid API key" {
		t.Fatalf("the token verified as a key: %v", e)
	}
	// Nor are near misses.
	for _, k := range []string{g.Key + "x", g.Key[:len(g.Key)-1], strings.ToUpper(g.Key)} {
		if _, e := verifyBus(t, a.nc, k); e == nil || e.Kind != bus.ErrUnauthorized {
			t.Fatalf("near miss verified: %v", e)
		}
	}
	// The master key still works, and the generated key is not admin.
	if id, e := verifyBus(t, a.nc, master); e != nil || !id.Admin || !id.Permissions.AllServers {
		t.Fatalf("master: %+v %v", id, e)
	}

	// A chosen key.
	mine := "sk-my-own-key-0123456789"
	g2 := generate(t, a.nc, map[string]any{"key": mine})
	if g2.Key != mine {
		t.Fatalf("chosen key: %+v", g2)
	}
	if id, e := verifyBus(t, a.nc, mine); e != nil || id.KeyID != bus.HashKey(mine) || !id.Permissions.AllServers {
		t.Fatalf("chosen key verify: %+v %v", id, e)
	}
	for _, bad := range []string{"sk-short", "pk-0123456789012345678901"} {
		if _, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"key": bad}); e == nil || e.Kind != bus.ErrBadRequest || strings.Contains(e.Message, bad) {
			t.Fatalf("bad chosen key %q: %v", bad, e)
		}
	}
	if _, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"key": mine}); e == nil || e.Kind != bus.ErrConflict || strings.Contains(e.Message, mine) {
		t.Fatalf("duplicate key: %v", e)
	}
	if _, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"key_alias": "ci-bot"}); e == nil || e.Kind != bus.ErrConflict || !strings.Contains(e.Message, "key_alias") {
		t.Fatalf("duplicate alias: %v", e)
	}
	if _, e := call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"team_id": "nope"}); e == nil || e.Message != "team_id 'nope' does not exist" {
		t.Fatalf("unknown team: %v", e)
	}

	// info by key and by token; no plaintext in it.
	for _, k := range []string{g.Key, g.Token} {
		data, e := call(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": k})
		if e != nil {
			t.Fatal(e)
		}
		var info struct {
			Key  string        `json:"key"`
			Info bus.KeyRecord `json:"info"`
		}
		_ = json.Unmarshal(data, &info)
		if info.Key != g.Token || info.Info.KeyAlias != "ci-bot" || info.Info.Metadata["owner"] != "ci" || strings.Contains(string(data), g.Key) {
			t.Fatalf("info: %s", data)
		}
	}
	if _, e := call(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": "sk-unknown-000000000000"}); e == nil || e.Kind != bus.ErrNotFound ||
		strings.Contains(e.Message, "sk-unknown") {
		t.Fatalf("info of an unknown key: %v", e)
	}
	var list struct {
		Keys  []string `json:"keys"`
		Total int      `json:"total_count"`
	}
	mustCall(t, a.nc, bus.SubjectKeyList, nil, &list)
	if list.Total != 2 || len(list.Keys) != 2 {
		t.Fatalf("list: %+v", list)
	}
	for _, flag := range []any{true, "true"} {
		var full struct {
			Keys []struct {
				Key      string `json:"key"`
				Token    string `json:"token"`
				KeyAlias string `json:"key_alias"`
			} `json:"keys"`
		}
		mustCall(t, a.nc, bus.SubjectKeyList, map[string]any{"return_full_object": flag}, &full)
		if len(full.Keys) != 2 || full.Keys[0].Token != g.Token || full.Keys[0].KeyAlias != "ci-bot" {
			t.Fatalf("full list: %+v", full)
		}
	}
	if _, e := call(t, a.nc, bus.SubjectKeyList, map[string]any{"return_full_object": "maybe"}); e == nil || !strings.HasPrefix(e.Message, "return_full_object") {
		t.Fatalf("bad flag: %v", e)
	}
}

func TestStoredRecordsHoldNoPlaintext(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng", "rpm_limit": 100}, nil)
	var keys []string
	for i := range 3 {
		body := map[string]any{"key_alias": fmt.Sprintf("k%d", i), "team_id": "eng", "rpm_limit": 10}
		if i == 2 {
			body["key"] = "sk-chosen-by-caller-12345"
		}
		g := generate(t, a.nc, body)
		keys = append(keys, g.Key)
		if _, e := verifyBus(t, a.nc, g.Key); e != nil { // writes rate-limit counters too
			t.Fatal(e)
		}
	}
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": keys[0], "rpm_limit": 5}, nil)

	js, _ := jetstream.New(a.nc)
	ctx := context.Background()
	// The rate-limit counters are named by token, never by key.
	counters, err := js.Stream(ctx, bus.StreamRateCounters)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := counters.Info(ctx, jetstream.WithSubjectFilter(">"))
	if len(info.State.Subjects) == 0 {
		t.Fatal("no rate-limit counters to scan")
	}
	for subject := range info.State.Subjects {
		for _, k := range keys {
			if strings.Contains(subject, strings.TrimPrefix(k, "sk-")) {
				t.Fatalf("counter %s is named by a plaintext key", subject)
			}
		}
	}
	for _, bucket := range []string{bus.BucketKeys, bus.BucketTeams} {
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		names, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for name := range names.Keys() {
			hist, err := kv.History(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range hist {
				n++
				for _, k := range keys {
					secret := strings.TrimPrefix(k, "sk-")
					if strings.Contains(name, secret) || strings.Contains(string(e.Value()), secret) {
						t.Fatalf("bucket %s entry %s holds a plaintext key", bucket, name)
					}
				}
			}
		}
		if n == 0 {
			t.Fatalf("bucket %s: no entries scanned", bucket)
		}
	}
}

func TestExpiredKey(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	rev := watchRevoked(t, ns)

	g := generate(t, a.nc, map[string]any{"key_alias": "temp", "duration": "30s"})
	wantExp := clk.now().Add(30 * time.Second)
	if g.Expires == nil || !g.Expires.Equal(wantExp) {
		t.Fatalf("expires %v, want %v", g.Expires, wantExp)
	}
	if _, e := verifyBus(t, a.nc, g.Key); e != nil {
		t.Fatal(e)
	}
	// A sweep for expired keys (what the expiry loop runs) before the expiry
	// announces nothing.
	a.store.announceExpired()
	rev.sync(t, a.nc)
	if rev.count(g.Token) != 0 {
		t.Fatal("revoked before expiry")
	}
	clk.advance(30 * time.Second)
	_, e := verifyBus(t, a.nc, g.Key)
	want := "unauthorized: key 'temp' expired at " + wantExp.Format(time.RFC3339)
	if e == nil || e.Kind != bus.ErrUnauthorized || e.Message != want {
		t.Fatalf("expired key: %v, want %q", e, want)
	}
	rev.wait(t, g.Token, 30*time.Second)
	// Another sweep after the announcement announces nothing more.
	a.store.announceExpired()
	rev.sync(t, a.nc)
	if n := rev.count(g.Token); n != 1 {
		t.Fatalf("expiry announced %d times by one replica, want once", n)
	}

	// Extending the key (duration resets from now) makes it work again.
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Token, "duration": "1h"}, nil)
	if _, e := verifyBus(t, a.nc, g.Key); e != nil {
		t.Fatalf("extended key: %v", e)
	}
	// Without an alias, messages name the token's prefix only.
	g2 := generate(t, a.nc, map[string]any{"duration": "1m"})
	clk.advance(2 * time.Minute)
	_, e = verifyBus(t, a.nc, g2.Key)
	if e == nil || !strings.Contains(e.Message, "key '"+g2.Token[:8]+"' expired at") || strings.Contains(e.Message, g2.Token) {
		t.Fatalf("expired key without alias: %v", e)
	}
	rev.wait(t, g2.Token, 30*time.Second)
}

func TestBlockedKeyAndTeam(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	rev := watchRevoked(t, ns)

	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_alias": "Platform", "mcp_servers": []string{"a", "b"}}, &team)
	if team.TeamID == "" || team.TeamAlias != "Platform" {
		t.Fatalf("team.new: %+v", team)
	}
	g := generate(t, a.nc, map[string]any{"key_alias": "dev", "team_id": team.TeamID, "mcp_servers": []string{"b", "c"}})
	other := generate(t, a.nc, map[string]any{"key_alias": "other"})
	id, e := verifyBus(t, a.nc, g.Key)
	if e != nil || id.Team != team.TeamID || fmt.Sprint(id.Permissions.Servers) != "[b]" || id.Permissions.AllServers {
		t.Fatalf("team key: %+v %v", id, e)
	}

	// Block the key.
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Key, "blocked": true}, nil)
	if _, e := verifyBus(t, a.nc, g.Key); e == nil || e.Message != "unauthorized: key 'dev' is blocked" {
		t.Fatalf("blocked key: %v", e)
	}
	rev.wait(t, g.Token, 30*time.Second)
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Key, "blocked": false}, nil)
	if _, e := verifyBus(t, a.nc, g.Key); e != nil {
		t.Fatalf("unblocked key: %v", e)
	}

	// Block the team.
	before := rev.count(g.Token)
	mustCall(t, a.nc, bus.SubjectTeamUpdate, map[string]any{"team_id": team.TeamID, "blocked": true}, nil)
	_, e = verifyBus(t, a.nc, g.Key)
	if e == nil || e.Kind != bus.ErrUnauthorized || !strings.Contains(e.Message, "team 'Platform'") || !strings.Contains(e.Message, "blocked") {
		t.Fatalf("blocked team: %v", e)
	}
	bustest.Eventually(t, 30*time.Second, "revocation on team block", func() error {
		if n := rev.count(g.Token); n <= before {
			return fmt.Errorf("revoked %d times, as before the block", n)
		}
		return nil
	})
	if _, e := verifyBus(t, a.nc, other.Key); e != nil {
		t.Fatalf("a key of no team suffers from a team block: %v", e)
	}
	if rev.count(other.Token) != 0 {
		t.Fatal("a key of no team was revoked")
	}
	mustCall(t, a.nc, bus.SubjectTeamUpdate, map[string]any{"team_id": team.TeamID, "blocked": false, "mcp_servers": []string{"c"}}, nil)
	if id, e := verifyBus(t, a.nc, g.Key); e != nil || fmt.Sprint(id.Permissions.Servers) != "[c]" {
		t.Fatalf("after team update: %+v %v", id, e)
	}

	// Delete the team: its keys go too.
	var del struct {
		Teams []string `json:"deleted_teams"`
		Keys  []string `json:"deleted_keys"`
	}
	mustCall(t, a.nc, bus.SubjectTeamDelete, map[string]any{"team_ids": []string{team.TeamID}}, &del)
	if fmt.Sprint(del.Teams) != fmt.Sprint([]string{team.TeamID}) || fmt.Sprint(del.Keys) != fmt.Sprint([]string{g.Token}) {
		t.Fatalf("team.delete: %+v", del)
	}
	if _, e := verifyBus(t, a.nc, g.Key); e == nil || e.Message != "unauthorized: invalid API key" {
		t.Fatalf("key of a deleted team: %v", e)
	}
	if _, e := call(t, a.nc, bus.SubjectTeamInfo, map[string]any{"team_id": team.TeamID}); e == nil || e.Kind != bus.ErrNotFound {
		t.Fatalf("info of a deleted team: %v", e)
	}
	if _, e := verifyBus(t, a.nc, other.Key); e != nil {
		t.Fatal(e)
	}
}

// A key whose team vanished without its keys (a partial failure, a race) never
// verifies, and the team id cannot be reused while such keys exist.
func TestOrphanKeyDoesNotVerify(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t1", "team_alias": "One"}, nil)
	g := generate(t, a.nc, map[string]any{"team_id": "t1"})
	if err := a.store.teamsKV.Delete(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "orphan refused", func() error {
		if _, e := a.verify(g.Token); e == nil || !strings.Contains(e.Message, "no longer exists") {
			return fmt.Errorf("verify: %v, want its team no longer exists", e)
		}
		return nil
	})
	if _, e := call(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "t1"}); e == nil || !strings.Contains(e.Message, "still exist") {
		t.Fatalf("team id reuse with orphans: %v", e)
	}
}

func TestDeleteReachesSecondInstance(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	g1 := generate(t, a.nc, map[string]any{"key_alias": "one"})
	g2 := generate(t, a.nc, map[string]any{"key_alias": "two"})
	g3 := generate(t, a.nc, map[string]any{})

	// B starts after A wrote: it loads the keys.
	b := startAuth(t, ns, nil)
	rev := watchRevoked(t, ns)
	for _, g := range []generated{g1, g2, g3} {
		if id, e := b.verify(g.Token); e != nil || id.KeyID != g.Token {
			t.Fatalf("B: %+v %v", id, e)
		}
	}
	// A key made on A after B started reaches B through the watch.
	g4 := generate(t, a.nc, map[string]any{"key_alias": "four"})
	bustest.Eventually(t, 30*time.Second, "new key on B", func() error {
		if _, e := b.verify(g4.Token); e != nil {
			return e
		}
		return nil
	})

	var del struct {
		Keys []string `json:"deleted_keys"`
	}
	// By plaintext, by token, and by alias, on A directly.
	out, e := a.keyDelete(context.Background(), actor{master: true}, []byte(fmt.Sprintf(`{"keys":[%q,%q]}`, g1.Key, g2.Token)))
	if e != nil {
		t.Fatal(e)
	}
	body, _ := json.Marshal(out)
	_ = json.Unmarshal(body, &del)
	if fmt.Sprint(del.Keys) != fmt.Sprint([]string{g1.Token, g2.Token}) || strings.Contains(string(body), g1.Key) {
		t.Fatalf("deleted: %s", body)
	}
	for _, g := range []generated{g1, g2} {
		rev.wait(t, g.Token, 30*time.Second)
		bustest.Eventually(t, 30*time.Second, "B refuses a deleted key", func() error {
			if _, e := b.verify(g.Token); e == nil || e.Message != "unauthorized: invalid API key" {
				return fmt.Errorf("verify: %v, want invalid API key", e)
			}
			return nil
		})
	}
	if _, e := a.keyDelete(context.Background(), actor{master: true}, []byte(`{"key_aliases":["four"]}`)); e != nil {
		t.Fatal(e)
	}
	rev.wait(t, g4.Token, 30*time.Second)
	bustest.Eventually(t, 30*time.Second, "B refuses a deleted key", func() error {
		if _, e := b.verify(g4.Token); e == nil {
			return errors.New("B still verifies it")
		}
		return nil
	})
	if _, e := b.verify(g3.Token); e != nil {
		t.Fatalf("an untouched key: %v", e)
	}
	// Deleting something unknown deletes nothing.
	if _, e := call(t, a.nc, bus.SubjectKeyDelete, map[string]any{"keys": []string{g3.Key, "sk-not-a-key-0000000000"}}); e == nil || e.Kind != bus.ErrNotFound {
		t.Fatalf("delete with an unknown key: %v", e)
	}
	if _, e := a.verify(g3.Token); e != nil {
		t.Fatalf("a failed delete deleted: %v", e)
	}
}

// Updates on one replica take effect on another within a second.
func TestUpdateReachesSecondInstance(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	b := startAuth(t, ns, nil)
	g := generate(t, a.nc, map[string]any{"key_alias": "x"})
	known(t, g.Token, a, b)
	if _, e := a.keyUpdate(context.Background(), actor{master: true}, []byte(fmt.Sprintf(`{"key":%q,"mcp_servers":["only"]}`, g.Key))); e != nil {
		t.Fatal(e)
	}
	bustest.Eventually(t, 30*time.Second, "B applies the update", func() error {
		if id, e := b.verify(g.Token); e != nil || fmt.Sprint(id.Permissions.Servers) != "[only]" {
			return fmt.Errorf("B verifies servers %v, %v; want [only]", id.Permissions.Servers, e)
		}
		return nil
	})
}

func TestRateLimitAcrossInstances(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	b := startAuth(t, ns, clk)
	const limit = 5
	g := generate(t, a.nc, map[string]any{"key_alias": "metered", "rpm_limit": limit})
	known(t, g.Token, a, b)

	for i := range limit {
		inst := []instance{a, b}[i%2]
		if _, e := inst.verify(g.Token); e != nil {
			t.Fatalf("request %d: %v", i+1, e)
		}
	}
	for _, inst := range []instance{a, b} {
		_, e := inst.verify(g.Token)
		if e == nil || e.Kind != bus.ErrRateLimited || e.Message != "rate limit exceeded: key 'metered' is limited to 5 requests per minute" {
			t.Fatalf("over the limit: %v", e)
		}
		if e.RetryAfter != 50*time.Second {
			t.Fatalf("RetryAfter %v, want 50s (the window's end)", e.RetryAfter)
		}
	}
	// Through the bus, RetryAfter travels too.
	if _, e := verifyBus(t, a.nc, g.Key); e == nil || e.Kind != bus.ErrRateLimited || e.RetryAfter != 50*time.Second {
		t.Fatalf("over the limit on the bus: %+v", e)
	}
	// Other keys are not affected.
	free := generate(t, a.nc, map[string]any{})
	known(t, free.Token, a)
	if _, e := a.verify(free.Token); e != nil {
		t.Fatal(e)
	}

	// A new window resets.
	clk.advance(50 * time.Second)
	for i := range limit {
		if _, e := []instance{b, a}[i%2].verify(g.Token); e != nil {
			t.Fatalf("new window, request %d: %v", i+1, e)
		}
	}
	if _, e := a.verify(g.Token); e == nil || e.Kind != bus.ErrRateLimited || e.RetryAfter != time.Minute {
		t.Fatalf("new window, over: %+v", e)
	}

	// Concurrent requests on both replicas: exactly the limit passes.
	clk.advance(time.Minute)
	const burst = 12
	g2 := generate(t, a.nc, map[string]any{"rpm_limit": burst})
	known(t, g2.Token, a, b)
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := range 3 * burst {
		wg.Go(func() {
			_, e := []instance{a, b}[i%2].verify(g2.Token)
			switch {
			case e == nil:
				ok.Add(1)
			case e.Kind == bus.ErrRateLimited:
				limited.Add(1)
			default:
				t.Errorf("concurrent verify: %v", e)
			}
		})
	}
	wg.Wait()
	if ok.Load() != burst || limited.Load() != 2*burst {
		t.Fatalf("concurrent: %d passed, %d limited; want %d and %d", ok.Load(), limited.Load(), burst, 2*burst)
	}
}

func TestTeamRateLimitIsShared(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	b := startAuth(t, ns, clk)
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "small", "team_alias": "Small", "rpm_limit": 3}, nil)
	k1 := generate(t, a.nc, map[string]any{"team_id": "small"})
	k2 := generate(t, a.nc, map[string]any{"team_id": "small", "rpm_limit": 100})
	known(t, k1.Token, a, b)
	known(t, k2.Token, a, b)
	if _, e := b.verify(k2.Token); e != nil {
		t.Fatal(e)
	}
	// That verify counted one: two more pass, across keys and replicas.
	if _, e := a.verify(k1.Token); e != nil {
		t.Fatal(e)
	}
	if _, e := b.verify(k1.Token); e != nil {
		t.Fatal(e)
	}
	_, e := a.verify(k2.Token)
	if e == nil || e.Kind != bus.ErrRateLimited || e.Message != "rate limit exceeded: team 'Small' is limited to 3 requests per minute" || e.RetryAfter <= 0 {
		t.Fatalf("team over its limit: %+v", e)
	}
}

// Concurrent updates of one key on two replicas: each either lands or errors;
// none is silently lost.
func TestConcurrentUpdatesAreNotLost(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	b := startAuth(t, ns, nil)
	ctx := context.Background()
	for round := range 15 {
		g := generate(t, a.nc, map[string]any{})
		known(t, g.Token, a, b)
		var errA, errB *bus.Error
		var wg sync.WaitGroup
		wg.Go(func() {
			_, errA = a.keyUpdate(ctx, actor{master: true}, []byte(fmt.Sprintf(`{"key":%q,"rpm_limit":%d}`, g.Token, round+1)))
		})
		wg.Go(func() {
			_, errB = b.keyUpdate(ctx, actor{master: true}, []byte(fmt.Sprintf(`{"key":%q,"metadata":{"round":%d}}`, g.Token, round)))
		})
		wg.Wait()
		rec, _, e := a.getKey(ctx, g.Token)
		if e != nil {
			t.Fatal(e)
		}
		if errA == nil && rec.RPMLimit != round+1 {
			t.Fatalf("round %d: update A answered ok but was lost: %+v", round, rec)
		}
		if errB == nil && rec.Metadata["round"] != float64(round) {
			t.Fatalf("round %d: update B answered ok but was lost: %+v", round, rec)
		}
		for _, e := range []*bus.Error{errA, errB} {
			if e != nil && (e.Kind != bus.ErrConflict || !strings.Contains(e.Message, "retry")) {
				t.Fatalf("round %d: unexpected error %v", round, e)
			}
		}
	}
	// Same for teams.
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "race"}, nil)
	bustest.Eventually(t, 30*time.Second, "B knows the team", func() error {
		b.store.mu.RLock()
		defer b.store.mu.RUnlock()
		if _, ok := b.store.teams["race"]; !ok {
			return errors.New("not in B's cache")
		}
		return nil
	})
	var errA, errB *bus.Error
	var wg sync.WaitGroup
	wg.Go(func() { _, errA = a.teamUpdate(ctx, actor{master: true}, []byte(`{"team_id":"race","rpm_limit":9}`)) })
	wg.Go(func() {
		_, errB = b.teamUpdate(ctx, actor{master: true}, []byte(`{"team_id":"race","team_alias":"Racers"}`))
	})
	wg.Wait()
	rec, e := a.getTeam(ctx, "race")
	if e != nil {
		t.Fatal(e)
	}
	if (errA == nil && rec.RPMLimit != 9) || (errB == nil && rec.TeamAlias != "Racers") {
		t.Fatalf("team update lost: %+v (%v, %v)", rec, errA, errB)
	}
}

func TestBadRequestsNameTheField(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	g := generate(t, a.nc, map[string]any{"duration": "30d"})
	if g.Expires == nil || g.Expires.Sub(time.Now()) < 29*24*time.Hour {
		t.Fatalf("30d: %v", g.Expires)
	}
	for _, d := range []string{"30s", "15m", "24h", "2w"} {
		generate(t, a.nc, map[string]any{"duration": d})
	}
	for _, c := range []struct {
		subject string
		body    any
		field   string
	}{
		{bus.SubjectKeyGenerate, map[string]any{"duration": "abc"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"duration": "30x"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"duration": "0d"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"duration": "-5m"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"duration": "1.5h"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"duration": 30}, "duration"},
		{bus.SubjectKeyUpdate, map[string]any{"key": g.Key, "duration": "soon"}, "duration"},
		{bus.SubjectKeyGenerate, map[string]any{"rpm_limit": "ten"}, "rpm_limit"},
		{bus.SubjectKeyGenerate, map[string]any{"rpm_limit": -1}, "rpm_limit"},
		{bus.SubjectKeyGenerate, map[string]any{"mcp_servers": "github"}, "mcp_servers"},
		{bus.SubjectKeyGenerate, map[string]any{"mcp_servers": []string{"a.b"}}, "mcp_servers"},
		{bus.SubjectKeyGenerate, map[string]any{"mcp_tool_permissions": []string{"x"}}, "mcp_tool_permissions"},
		{bus.SubjectKeyUpdate, map[string]any{"rpm_limit": 1}, "key"},
		{bus.SubjectTeamNew, map[string]any{"team_id": "has space"}, "team_id"},
		{bus.SubjectTeamNew, map[string]any{"rpm_limit": true}, "rpm_limit"},
		{bus.SubjectTeamDelete, map[string]any{}, "team_ids"},
		{bus.SubjectKeyDelete, map[string]any{}, "keys"},
	} {
		_, e := call(t, a.nc, c.subject, c.body)
		if e == nil || e.Kind != bus.ErrBadRequest || !strings.HasPrefix(e.Message, c.field) {
			t.Errorf("%s %v: got %v, want a bad request naming %s", c.subject, c.body, e, c.field)
		}
	}
	if _, e := call(t, a.nc, bus.SubjectKeyGenerate, "{not json"); e == nil || e.Kind != bus.ErrBadRequest {
		t.Errorf("malformed body: %v", e)
	}
	// A failed update changes nothing.
	var info struct {
		Info bus.KeyRecord `json:"info"`
	}
	mustCall(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": g.Key}, &info)
	if !info.Info.Expires.Equal(*g.Expires) {
		t.Fatalf("a failed update changed the expiry")
	}
}

func TestTeamEndpoints(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng", "team_alias": "Engineering",
		"object_permission": map[string]any{"mcp_servers": []string{"gh"}, "mcp_tool_permissions": map[string][]string{"gh": {"issues"}}},
		"metadata":          map[string]any{"cost_center": "42"}}, &team)
	if team.TeamID != "eng" || fmt.Sprint(team.MCPServers) != "[gh]" || fmt.Sprint(team.MCPToolPermissions) != "map[gh:[issues]]" {
		t.Fatalf("team.new: %+v", team)
	}
	if _, e := call(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_id": "eng"}); e == nil || e.Kind != bus.ErrConflict || !strings.Contains(e.Message, "already exists") {
		t.Fatalf("duplicate team: %v", e)
	}
	k := generate(t, a.nc, map[string]any{"team_id": "eng"})
	id, e := verifyBus(t, a.nc, k.Key)
	if e != nil || fmt.Sprint(id.Permissions.Servers) != "[gh]" || fmt.Sprint(id.Permissions.Tools) != "map[gh:[issues]]" {
		t.Fatalf("key inherits the team's permissions: %+v %v", id, e)
	}
	var info struct {
		TeamID string         `json:"team_id"`
		Info   bus.TeamRecord `json:"team_info"`
		Keys   []string       `json:"keys"`
	}
	mustCall(t, a.nc, bus.SubjectTeamInfo, map[string]any{"team_id": "eng"}, &info)
	if info.TeamID != "eng" || info.Info.TeamAlias != "Engineering" || fmt.Sprint(info.Keys) != fmt.Sprint([]string{k.Token}) {
		t.Fatalf("team.info: %+v", info)
	}
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{}, nil)
	var teams []bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamList, nil, &teams)
	if len(teams) != 2 || teams[0].TeamID != "eng" || len(teams[1].TeamID) != 36 {
		t.Fatalf("team.list: %+v", teams)
	}
	var list struct {
		Keys  []string `json:"keys"`
		Total int      `json:"total_count"`
	}
	generate(t, a.nc, map[string]any{})
	mustCall(t, a.nc, bus.SubjectKeyList, map[string]any{"team_id": "eng"}, &list)
	if list.Total != 1 || list.Keys[0] != k.Token {
		t.Fatalf("key.list by team: %+v", list)
	}
	// Moving a key to an unknown team fails; to no team works.
	if _, e := call(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": k.Key, "team_id": "ghost"}); e == nil || e.Message != "team_id 'ghost' does not exist" {
		t.Fatalf("move to unknown team: %v", e)
	}
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": k.Key, "team_id": ""}, nil)
	if id, e := verifyBus(t, a.nc, k.Key); e != nil || !id.Permissions.AllServers || id.Team != "" {
		t.Fatalf("key without team: %+v %v", id, e)
	}
}

func TestWithoutJetStream(t *testing.T) {
	nc := bustest.Conn(t, bustest.Server(t))
	svc, err := Start(nc, Options{MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	if id, e := verifyBus(t, nc, master); e != nil || !id.Admin {
		t.Fatalf("master: %v", e)
	}
	if _, e := call(t, nc, bus.SubjectKeyGenerate, map[string]any{}); e == nil || e.Kind != bus.ErrServiceUnavailable {
		t.Fatalf("generate without JetStream: %v", e)
	}
}

// LiteLLM's limits mcpbus does not enforce (budgets, token limits, vector
// stores, ...) are refused with 400 naming them, and nothing is written; the same
// fields left empty, as LiteLLM's clients send them by default, pass.
func TestUnenforcedLimitsRefused(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	for subject, body := range map[string]map[string]any{
		bus.SubjectKeyGenerate: {"key_alias": "limited", "max_parallel_requests": 4},
		bus.SubjectTeamNew:     {"team_id": "budgeted", "soft_budget": 10},
		"key vector stores":    {"key_alias": "stored", "object_permission": map[string]any{"vector_stores": []string{"docs"}}},
	} {
		subj := subject
		if subj == "key vector stores" {
			subj = bus.SubjectKeyGenerate
		}
		_, e := call(t, a.nc, subj, body)
		if e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, "not enforced by mcpbus yet") {
			t.Errorf("%s %v: %v, want 400 naming the field", subject, body, e)
		}
		for field := range body {
			if field != "key_alias" && field != "team_id" && e != nil && !strings.Contains(e.Message, field) {
				t.Errorf("%s: %q does not name %s", subject, e.Message, field)
			}
		}
	}
	var list struct {
		Keys []string `json:"keys"`
	}
	mustCall(t, a.nc, bus.SubjectKeyList, map[string]any{}, &list)
	if len(list.Keys) != 0 {
		t.Errorf("a refused write stored keys: %v", list.Keys)
	}
	// Empty values set no limit.
	k := generate(t, a.nc, map[string]any{"key_alias": "open", "models": []string{}, "max_budget": nil, "object_permission": map[string]any{"mcp_access_groups": []string{}}})
	if k.Key == "" {
		t.Fatal("a key with empty LiteLLM limits was refused")
	}
}

// Access groups (LiteLLM's mcp_access_groups), top-level or under
// object_permission, are stored on keys and teams, shown back, and reach the
// permissions every service checks: the key's and the team's limits both apply.
func TestAccessGroupsOnKeysAndTeams(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)

	var team bus.TeamRecord
	mustCall(t, a.nc, bus.SubjectTeamNew, map[string]any{"team_alias": "eng",
		"object_permission": map[string]any{"mcp_access_groups": []string{"eng"}}}, &team)
	if fmt.Sprint(team.MCPAccessGroups) != "[eng]" {
		t.Fatalf("team.new: %+v", team)
	}
	g := generate(t, a.nc, map[string]any{"key_alias": "dev", "team_id": team.TeamID,
		"mcp_servers": []string{"notes"}, "mcp_access_groups": []string{"eng", "ops", "eng"}})
	id, e := verifyBus(t, a.nc, g.Key)
	if e != nil {
		t.Fatal(e)
	}
	p := id.Permissions
	spec := func(name string, groups ...string) bus.ServerSpec {
		return bus.ServerSpec{Name: name, AccessGroups: groups}
	}
	for _, c := range []struct {
		s    bus.ServerSpec
		want bool
	}{
		{spec("build", "eng"), true},  // the key's group and the team's
		{spec("pager", "ops"), false}, // the key's group, not the team's
		{spec("notes"), false},        // named by the key, not the team's
		{spec("notes", "eng"), true},  // named by the key, in the team's group
		{spec("other"), false},
	} {
		if p.AllowsServer(c.s) != c.want {
			t.Errorf("server %s %v: allowed=%v, want %v (permissions %+v)", c.s.Name, c.s.AccessGroups, !c.want, c.want, p)
		}
	}

	// Shown back, and cleared by an empty list.
	var info struct {
		Info bus.KeyRecord `json:"info"`
	}
	mustCall(t, a.nc, bus.SubjectKeyInfo, map[string]any{"key": g.Key}, &info)
	if fmt.Sprint(info.Info.MCPAccessGroups) != "[eng ops]" {
		t.Fatalf("key/info: %+v", info.Info)
	}
	mustCall(t, a.nc, bus.SubjectKeyUpdate, map[string]any{"key": g.Key, "object_permission": map[string]any{"mcp_access_groups": []string{}}}, nil)
	if id, _ := verifyBus(t, a.nc, g.Key); id.Permissions.AllowsServer(spec("build", "eng")) {
		t.Fatalf("a key without its access groups still reaches the group's server: %+v", id.Permissions)
	}

	// A name that could not be a group is refused, naming the field.
	_, e = call(t, a.nc, bus.SubjectKeyGenerate, map[string]any{"mcp_access_groups": []string{"a b"}})
	if e == nil || e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, "mcp_access_groups") {
		t.Fatalf("bad group name: %v", e)
	}
}

// rpm_limit is exact across replicas under load: 64 clients spread over two
// auth replicas send 960 requests at a key limited to 600; exactly 600 are
// admitted, the rest refused with 429 (none failed open or with 503).
func TestRateLimitExactAcrossReplicas(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	b := startAuth(t, ns, clk)
	k := generate(t, a.nc, map[string]any{"key_alias": "busy", "rpm_limit": 600})
	known(t, k.Token, a, b)
	var admitted, limited, other atomic.Int64
	var wg sync.WaitGroup
	for c := range 64 {
		replica := a
		if c%2 == 1 {
			replica = b
		}
		wg.Go(func() {
			for range 15 {
				_, e := replica.verify(k.Token)
				switch {
				case e == nil:
					admitted.Add(1)
				case e.Kind == bus.ErrRateLimited:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if admitted.Load() != 600 || limited.Load() != 360 || other.Load() != 0 {
		t.Fatalf("admitted %d (want 600), limited %d (want 360), other errors %d", admitted.Load(), limited.Load(), other.Load())
	}
}

// While the counters cannot be reached, a rate-limited key's requests are
// refused (503, naming why) unless the operator chose to let them through;
// keys without a limit are not affected either way.
func TestRateLimitWhenCountersAreUnavailable(t *testing.T) {
	ns := bustest.Server(t)
	clk := newClock()
	a := startAuth(t, ns, clk)
	limitedKey := generate(t, a.nc, map[string]any{"key_alias": "metered", "rpm_limit": 10})
	free := generate(t, a.nc, map[string]any{"key_alias": "free"})
	js, _ := jetstream.New(a.nc)
	if err := js.DeleteStream(context.Background(), bus.StreamRateCounters); err != nil {
		t.Fatal(err)
	}
	_, e := a.verify(limitedKey.Token)
	if e == nil || e.Kind != bus.ErrServiceUnavailable || e.Message != "the rate limit of key 'metered' cannot be checked now, so the request is refused; try again shortly" {
		t.Fatalf("limited key without counters: %+v", e)
	}
	if _, e := a.verify(free.Token); e != nil {
		t.Fatalf("a key without a limit: %v", e)
	}
	a.failOpen = true // general_settings.rate_limit_unavailable: allow
	if _, e := a.verify(limitedKey.Token); e != nil {
		t.Fatalf("fail open: %v", e)
	}
}
