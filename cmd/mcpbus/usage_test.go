package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// usageServer is a NATS server with the usage stream, and a way to publish
// events to it as workers do. The CLI connects as a bus user with the usage
// role alone (MCPBUS_NATS_USER), as a dashboard's operator would configure.
// usageServer starts a NATS server with the usage stream; publish stores
// events in it and returns when the stream stored the last (its time).
func usageServer(t *testing.T) (url string, publish func(...bus.UsageEvent) time.Time) {
	t.Helper()
	writer := bus.BusUser{User: "writer", Password: bus.NewPassword(), Unrestricted: true}
	reader := bus.BusUser{User: "dashboard", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleUsage}}
	ns, err := natsnode.StartEmbedded(natsnode.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxMemory: 64 << 20, MaxStore: 256 << 20,
		Users: []bus.BusUser{writer, reader}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	t.Setenv("MCPBUS_NATS_USER", reader.User)
	t.Setenv("MCPBUS_NATS_PASSWORD", reader.Password)
	nc, err := natsnode.Connect(ns.ClientURL(), natsnode.ConnectOptions{Name: "test-writer", User: writer.User, Password: writer.Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, bus.StreamUsage)
	if err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), func(evs ...bus.UsageEvent) time.Time {
		var last uint64
		for _, ev := range evs {
			data, _ := json.Marshal(ev)
			m := nats.NewMsg(bus.UsageSubject(ev.Team, ev.Server, ev.Tool))
			m.Data = data
			m.Header.Set(jetstream.MsgIDHeader, ev.RequestID)
			ack, err := js.PublishMsg(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			last = ack.Sequence
		}
		stored, err := stream.GetMsg(ctx, last)
		if err != nil {
			t.Fatal(err)
		}
		return stored.Time
	}
}

var usageT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ev(id, server, tool, method, status string, ms, cost float64) bus.UsageEvent {
	e := bus.UsageEvent{Time: usageT0, RequestID: id, KeyID: bus.HashKey("sk-" + id), Team: "t1", Server: server, Tool: tool,
		Method: method, Status: status, DurationMS: ms, BytesIn: 100, BytesOut: 200, IPClass: bus.Internal, Cost: cost}
	switch status {
	case "error":
		e.ErrorCode = "-32602"
	case "failed":
		e.ErrorCode = bus.ErrUpstreamTimeout.Code
	}
	return e
}

// llmEv is an LLM call's event, as the LLM router records it.
func llmEv(id, model string, ms float64, prompt, completion int, cost float64) bus.UsageEvent {
	e := ev(id, bus.LLMUsageServer, model, bus.LLMUsageMethod, "ok", ms, cost)
	e.Deployment, e.PromptTokens, e.CompletionTokens = "d1", prompt, completion
	return e
}

func TestUsageTop(t *testing.T) {
	url, publish := usageServer(t)
	// --since is the stream's time: just after the old event was stored,
	// before the next ones are.
	since := publish(ev("old", "github", "search", "tools/call", "ok", 999, 9)).Add(time.Nanosecond)
	publish(
		ev("r1", "github", "search", "tools/call", "ok", 10, 0.05),
		ev("r2", "github", "search", "tools/call", "ok", 40, 0.05),
		ev("r3", "github", "search", "tools/call", "error", 30, 0),
		ev("r4", "github", "search", "tools/call", "ok", 20, 0.05),
		ev("r5", "jira", "create_issue", "tools/call", "ok", 100, 1.5),
		ev("r6", "jira", "create_issue", "tools/call", "failed", 200, 0),
		ev("r7", "github", "", "tools/list", "ok", 5, 0),
		llmEv("r8", "gpt-4o", 300, 1000, 200, 0.0045),
		ev("r1", "github", "search", "tools/call", "ok", 10, 0.05), // a duplicate: dropped by the stream
	)
	code, stdout, stderr := runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--nats", url)
	want := `SERVER  TOOL          CALLS  ERRORS  FAILED  P50_MS  P95_MS  TOKENS  COST
github  search        4      1       0       20.0    40.0    0       0.15
jira    create_issue  2      0       1       100.0   200.0   0       1.5
_llm    gpt-4o        1      0       0       300.0   300.0   1200    0.0045
github  tools/list    1      0       0       5.0     5.0     0       0
TOTAL                 8      1       1       30.0    300.0   1200    1.6545
`
	if code != 0 || stdout != want {
		t.Fatalf("exit %d, stderr %s\ngot:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	// --server narrows; a window with nothing in it prints the header and a zero total.
	_, stdout, _ = runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--server", "jira", "--nats", url)
	if !strings.Contains(stdout, "jira    create_issue  2") || strings.Contains(stdout, "github") {
		t.Fatalf("--server jira:\n%s", stdout)
	}
	// Per team and per key.
	_, stdout, _ = runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--by", "team", "--nats", url)
	if want := "TEAM   CALLS  ERRORS  FAILED  P50_MS  P95_MS  TOKENS  COST\nt1     8      1       1       30.0    300.0   1200    1.6545\nTOTAL  8      1       1       30.0    300.0   1200    1.6545\n"; stdout != want {
		t.Fatalf("--by team:\n%q\nwant\n%q", stdout, want)
	}
	_, stdout, _ = runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--by", "key", "--nats", url)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 10 || !strings.HasPrefix(lines[0], "KEY") || !strings.Contains(lines[0], "TEAM") ||
		!strings.Contains(stdout, (bus.Identity{KeyID: bus.HashKey("sk-r5")}).Name()) {
		t.Fatalf("--by key: want a row per key (8) under KEY TEAM:\n%s", stdout)
	}
	if code, _, stderr := runCLI("usage", "top", "--by", "model", "--nats", url); code == 0 || !strings.Contains(stderr, "want tool, server, key, team or org") {
		t.Fatalf("--by model: exit %d %s", code, stderr)
	}
	_, stdout, _ = runCLI("usage", "top", "--since", time.Now().Add(time.Minute).Format(time.RFC3339), "--nats", url)
	if want := "SERVER  TOOL  CALLS  ERRORS  FAILED  P50_MS  P95_MS  TOKENS  COST\nTOTAL         0      0       0       0.0     0.0     0       0\n"; stdout != want {
		t.Fatalf("empty window:\n%q\nwant\n%q", stdout, want)
	}
}

type lockedBuf = bustest.Buffer

// awaitOutput returns once out holds want, or after 30 s: the caller
// compares them once the command has ended.
func awaitOutput(out *lockedBuf, want string) {
	_ = bustest.Poll(30*time.Second, func() error { return bustest.Want("printed", out.String(), want) })
}

func TestUsageTail(t *testing.T) {
	url, publish := usageServer(t)
	since := publish(ev("old", "github", "search", "tools/call", "ok", 1, 0)).Add(time.Nanosecond).Format(time.RFC3339Nano)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "github"}, "" +
			"2025-06-01T12:00:00.000Z ok github search 12.5ms team=t1 key=" + bus.HashKey("sk-a")[:8] + " in=100 out=200 cost=0.05\n" +
			"2025-06-01T12:00:00.000Z error github search 3.0ms team=t1 key=" + bus.HashKey("sk-c")[:8] + " in=100 out=200 code=-32602\n"},
		{[]string{"--json", "--team", "t1", "--tool", "create_issue"}, ""},
	} {
		out := &lockedBuf{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- usageCmd(ctx, append([]string{"tail", "--nats", url, "--since", since}, tc.args...), out, &lockedBuf{})
		}()
		if tc.want == "" { // the JSON case: the event as published
			data, _ := json.Marshal(ev("b", "jira", "create_issue", "tools/call", "failed", 7, 0))
			tc.want = string(data) + "\n"
		}
		if strings.Contains(strings.Join(tc.args, " "), "github") {
			publish(ev("a", "github", "search", "tools/call", "ok", 12.5, 0.05), ev("b", "jira", "create_issue", "tools/call", "failed", 7, 0),
				ev("c", "github", "search", "tools/call", "error", 3, 0))
		}
		awaitOutput(out, tc.want)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := out.String(); got != tc.want {
			t.Fatalf("%v:\ngot:\n%s\nwant:\n%s", tc.args, got, tc.want)
		}
	}
}

// Usage rolls up per organization: --by org sums the events of all its
// teams, --org keeps one organization's (top and tail).
func TestUsageByOrganization(t *testing.T) {
	url, publish := usageServer(t)
	since := publish(ev("old", "github", "search", "tools/call", "ok", 1, 0)).Add(time.Nanosecond)
	inOrg := func(e bus.UsageEvent, team, org string) bus.UsageEvent { e.Team, e.OrgID = team, org; return e }
	publish(
		inOrg(ev("a1", "github", "search", "tools/call", "ok", 10, 0.25), "t1", "acme"),
		inOrg(ev("a2", "github", "search", "tools/call", "ok", 20, 0.25), "t2", "acme"),
		inOrg(llmEv("a3", "gpt-4o", 30, 100, 20, 0.5), "t2", "acme"),
		inOrg(ev("b1", "jira", "create", "tools/call", "error", 40, 0), "t3", "globex"),
		inOrg(ev("n1", "jira", "create", "tools/call", "ok", 50, 1), "t4", ""),
	)
	code, stdout, stderr := runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--by", "org", "--nats", url)
	want := `ORG     CALLS  ERRORS  FAILED  P50_MS  P95_MS  TOKENS  COST
acme    3      0       0       20.0    30.0    120     1
-       1      0       0       50.0    50.0    0       1
globex  1      1       0       40.0    40.0    0       0
TOTAL   5      1       0       30.0    50.0    120     2
`
	if code != 0 || stdout != want {
		t.Fatalf("--by org: exit %d %s\ngot:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	_, stdout, _ = runCLI("usage", "top", "--since", since.Format(time.RFC3339Nano), "--by", "team", "--org", "acme", "--nats", url)
	if want := "TEAM   CALLS  ERRORS  FAILED  P50_MS  P95_MS  TOKENS  COST\nt2     2      0       0       20.0    30.0    120     0.75\nt1     1      0       0       10.0    10.0    0       0.25\nTOTAL  3      0       0       20.0    30.0    120     1\n"; stdout != want {
		t.Fatalf("--org acme --by team:\n%q\nwant\n%q", stdout, want)
	}

	out := &lockedBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- usageCmd(ctx, []string{"tail", "--nats", url, "--since", since.Format(time.RFC3339Nano), "--org", "globex"}, out, &lockedBuf{})
	}()
	want = "2025-06-01T12:00:00.000Z error jira create 40.0ms team=t3 org=globex key=" + bus.HashKey("sk-b1")[:8] + " in=100 out=200 code=-32602\n"
	awaitOutput(out, want)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want {
		t.Fatalf("tail --org globex:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90s":                  now.Add(-90 * time.Second),
		"1h":                   now.Add(-time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"2025-05-31T00:00:00Z": time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1h", "soon", "0s"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

// top reads past one fetch batch.
func TestUsageTopManyEvents(t *testing.T) {
	url, publish := usageServer(t)
	const n = 2500
	evs := make([]bus.UsageEvent, n)
	for i := range evs {
		evs[i] = ev("r"+strconv.Itoa(i), "github", "search", "tools/call", "ok", float64(i%100+1), 0.01)
	}
	publish(evs...)
	code, stdout, stderr := runCLI("usage", "top", "--since", "1h", "--nats", url)
	if code != 0 || !strings.Contains(stdout, "github  search  2500   0       0       50.0    95.0    0       25\n") {
		t.Fatalf("exit %d %s\n%s", code, stderr, stdout)
	}
}
