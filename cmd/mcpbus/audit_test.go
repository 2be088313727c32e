package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// auditServer starts a NATS server with the audit stream; publish stores
// records (bus.AuditRecord) and pin events (bus.PinEvent) in it as workers
// and the registry do and returns when the last is stored. The CLI
// connects as a bus user with the audit role alone.
func auditServer(t *testing.T) (url string, publish func(...any)) {
	t.Helper()
	writer := bus.BusUser{User: "writer", Password: bus.NewPassword(), Unrestricted: true}
	reader := bus.BusUser{User: "auditor", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleAudit}}
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
	if _, err := bus.AuditStream(ctx, js, bus.AuditStreamOptions{MaxBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), func(rs ...any) {
		for _, r := range rs {
			data, _ := json.Marshal(r)
			var m *nats.Msg
			switch r := r.(type) {
			case bus.AuditRecord:
				m = nats.NewMsg(bus.AuditSubject(r.Server, r.Outcome))
				m.Header.Set(jetstream.MsgIDHeader, r.RequestID)
			case bus.PinEvent:
				m = nats.NewMsg(bus.PinEventSubject(r.Server))
			default:
				t.Fatalf("publish %T", r)
			}
			m.Data = data
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func rec(id, server, tool, outcome, alias string, at time.Time) bus.AuditRecord {
	r := bus.AuditRecord{Time: at, RequestID: id, KeyID: bus.HashKey("sk-" + id), KeyAlias: alias, IPClass: bus.Internal,
		Server: server, Method: "tools/call", Tool: tool, Outcome: outcome, DurationMS: 12.5, UpstreamMS: 10}
	r.SetArguments(bus.AuditArgsHash, json.RawMessage(`{"q":"`+id+`"}`))
	return r
}

func TestAuditExport(t *testing.T) {
	url, publish := auditServer(t)
	now := time.Now().UTC()
	old, r1, r2, r3 := rec("old", "github", "search", bus.AuditOK, "bot", now.Add(-3*time.Hour)),
		rec("r1", "github", "search", bus.AuditOK, "bot", now.Add(-time.Hour)),
		rec("r2", "jira", "create", bus.AuditDenied, "other", now.Add(-50*time.Minute)),
		rec("r3", "github", "create", bus.AuditError, "bot", now.Add(-40*time.Minute))
	// A pin change is kept beside the calls (docs/PINNING.md).
	pin := bus.PinEvent{Event: bus.PinEventPending, Server: "github", Tool: "create", Hash: sha("new"), PreviousHash: sha("old"), At: now.Add(-30 * time.Minute)}
	publish(old, r1, r2, r3, pin)
	line := func(r any) string { b, _ := json.Marshal(r); return string(b) + "\n" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "2h"}, line(r1) + line(r2) + line(r3) + line(pin)},
		{[]string{"--since", "2h", "--until", now.Add(-45 * time.Minute).Format(time.RFC3339Nano)}, line(r1) + line(r2)},
		{[]string{"--since", "4h", "--server", "github", "--key", "bot"}, line(old) + line(r1) + line(r3)},
		{[]string{"--since", "4h", "--server", "github"}, line(old) + line(r1) + line(r3) + line(pin)},
		{[]string{"--since", "4h", "--outcome", "denied"}, line(r2)},
		{[]string{"--since", "4h", "--outcome", "pin"}, line(pin)},
		{[]string{"--since", "4h", "--key", bus.HashKey("sk-r3")[:8]}, line(r3)},
	} {
		code, stdout, stderr := runCLI(append([]string{"audit", "export", "--nats", url}, tc.args...)...)
		if code != 0 || stdout != tc.want {
			t.Errorf("audit export %v: exit %d %s\ngot:\n%s\nwant:\n%s", tc.args, code, stderr, stdout, tc.want)
		}
	}
	for args, msg := range map[string]string{
		"export":                            "--since is required",
		"export --since 1h --format csv":    "only jsonl",
		"export --since 1h --outcome maybe": `--outcome "maybe": want one of ok, error, denied, cancelled`,
		"list":                              `unknown subcommand "list"`,
	} {
		code, _, stderr := runCLI(append(append([]string{"audit"}, strings.Fields(args)...), "--nats", url)...)
		if code == 0 || !strings.Contains(stderr, msg) {
			t.Errorf("audit %s: exit %d, %q, want %q", args, code, stderr, msg)
		}
	}
}

func TestAuditTail(t *testing.T) {
	url, publish := auditServer(t)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	publish(rec("old", "github", "search", bus.AuditOK, "bot", at))
	out := &lockedBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- auditCmd(ctx, []string{"tail", "--nats", url, "--since", "2025-06-01T11:00:00Z", "--server", "github"}, out, &lockedBuf{})
	}()
	r := rec("r1", "github", "create", bus.AuditDenied, "", at)
	r.ErrorCode = bus.ErrToolNotAllowed.Code
	pin := bus.PinEvent{Event: bus.PinEventApproved, Server: "github", Tool: "create", Hash: sha("new"), PreviousHash: sha("old"), By: "key 'admin'", At: at}
	publish(rec("r0", "jira", "x", bus.AuditOK, "bot", at), r, bus.PinEvent{Event: bus.PinEventPinned, Server: "jira", Tool: "x", Hash: sha("x"), At: at}, pin)
	want := "2025-06-01T12:00:00.000Z ok github search 12.5ms upstream=10.0ms key=bot ip=internal req=old args=sha256:" + rec("old", "", "", "", "", at).ArgumentsSHA256[:8] + "\n" +
		"2025-06-01T12:00:00.000Z denied github create 12.5ms upstream=10.0ms key=" + bus.HashKey("sk-r1")[:8] + " ip=internal req=r1 code=" + bus.ErrToolNotAllowed.Code + " args=sha256:" + r.ArgumentsSHA256[:8] + "\n" +
		"2025-06-01T12:00:00.000Z pin approved github create sha256:" + sha("new")[:8] + " was=sha256:" + sha("old")[:8] + " by=key 'admin'\n"
	awaitOutput(out, want)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
