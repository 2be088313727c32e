package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats.go"
)

// `mcpbus nats` needs no config file: the users that `mcpbus nats-config`
// wrote for the operator's own nats-server nodes admit the same processes
// here, held to the same subjects.
func TestNATSCommandTakesUsersWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	t.Setenv("NODE_TEST_PW", "worker-password-0123456789")
	if err := os.WriteFile(cfg, []byte(`general_settings:
  mcp_bus_users:
    - {user: worker-gh, password: os.environ/NODE_TEST_PW, roles: [workers], servers: [github]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.conf")
	if code, _, errOut := runCLI("nats-config", "--config", cfg, "--out", users); code != 0 {
		t.Fatalf("nats-config: %s", errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serveAs(ctx, "nats", []string{"--services", "nats", "--nats-users", users, "--nats-listen", addr, "--data", t.TempDir()}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("nats returned %v after cancel", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("nats did not stop within 10s of cancel")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || !strings.Contains(line, "mcpbus services nats running") {
		t.Fatalf("ready line %q, %v", line, err)
	}
	go io.Copy(io.Discard, pr)

	nc, err := natsnode.Connect("nats://"+addr, natsnode.ConnectOptions{Name: "w", User: "worker-gh", Password: "worker-password-0123456789"})
	if err != nil {
		t.Fatalf("the file's user cannot join: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("mcpbus.v1.tool.gitlab.rpc", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush() // the refusal comes before the flush's answer
	if e := nc.LastError(); e == nil || !strings.Contains(e.Error(), "Permissions Violation") {
		t.Fatalf("a worker for github subscribed to gitlab's calls: %v", e)
	}
	if bad, err := natsnode.Connect("nats://"+addr, natsnode.ConnectOptions{Name: "x", User: "worker-gh", Password: "wrong-password-0123456789"}); err == nil {
		bad.Close()
		t.Fatal("a wrong password joined")
	}
}

// Without users `mcpbus nats` would admit nobody; a users file that is not
// what nats-config writes is refused, naming the problem.
func TestNATSCommandUserErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no bus users: give --nats-users FILE"},
		{[]string{"--config", write("bare.yaml", "general_settings: {}\n")}, "no bus users: give --nats-users FILE"},
		{[]string{"--nats-users", write("open.conf", `authorization: {users: [{user: a, password: b}]}`)}, `user "a" has no permissions`},
		{[]string{"--nats-users", write("token.conf", `authorization: {token: s3cret}`)}, "want an authorization block with users only"},
		{[]string{"--nats-users", filepath.Join(dir, "missing.conf")}, "--nats-users " + filepath.Join(dir, "missing.conf")},
		{[]string{"--nats-leafnodes", "0.0.0.0:7422", "--nats-users", write("ok.conf", `authorization: {users: [{user: a, password: b, permissions: {publish: x}}]}`)}, "loopback"},
	} {
		args := append([]string{"nats", "--nats-listen", "off", "--data", t.TempDir()}, tc.args...)
		code, _, errOut := runCLI(args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("mcpbus %v: exit %d, %q; want %q", args, code, errOut, tc.want)
		}
	}
}

// A process leaves to others the parts of the config file they use: a
// router on an external NATS needs neither upstream credentials nor other
// services' bus passwords; a registry or worker needs the servers, the LLM
// service the models, the agent workers the agents; the embedded NATS
// server needs the bus users.
func TestConfigParts(t *testing.T) {
	for _, tc := range []struct {
		name, services, nats string
		want                 config.Parts
	}{
		{"serve", "", "", config.Parts{}},
		{"serve", "", "nats://n1:4222", config.Parts{SkipBusUsers: true}},
		{"router", "router", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipServers: true, SkipModels: true, SkipAgents: true}},
		{"serve", "auth,ingress", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipServers: true, SkipModels: true, SkipAgents: true}},
		{"registry", "registry", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipModels: true, SkipAgents: true}},
		{"serve", "router,workers", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipModels: true, SkipAgents: true}},
		{"llm", "llm", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipServers: true, SkipAgents: true}},
		{"agents", "agents", "nats://n1:4222", config.Parts{SkipBusUsers: true, SkipServers: true, SkipModels: true}},
		{"nats", "nats", "", config.Parts{SkipServers: true, SkipModels: true, SkipAgents: true}},
	} {
		if got := configParts(tc.name, serveFlags{services: tc.services, natsURL: tc.nats}); got != tc.want {
			t.Errorf("%s --services %q --nats %q: %+v, want %+v", tc.name, tc.services, tc.nats, got, tc.want)
		}
	}
	// nats-config writes the bus users without the servers' credentials.
	cfg := writeConfig(t, `general_settings:
  mcp_bus_users:
    - {user: worker-gh, password: worker-password-0123456789, roles: [workers], servers: [github]}
mcp_servers:
  github: {url: "https://api.example.com/mcp", auth_type: bearer_token, auth_value: os.environ/PARTS_NOT_HERE}
`)
	if code, _, errOut := runCLI("nats-config", "--config", cfg); code != 0 {
		t.Fatalf("nats-config needed an upstream credential: %s", errOut)
	}
}
