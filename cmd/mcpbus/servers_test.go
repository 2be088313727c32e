package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
)

// serveForCLI runs `mcpbus serve` in process with cfg and returns its URL.
func serveForCLI(t *testing.T, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--config", writeConfig(t, cfg), "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--nats-listen", "off"}, pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	m := regexp.MustCompile(`mcpbus listening on (http://127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line = %q", line)
	}
	return m[1]
}

// cli runs `mcpbus args...` and returns its exit code and output.
func cli(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// `mcpbus servers` against a real gateway: list shows the state, drain and
// undrain, canary set, ramp, off and promote change it, errors say why.
func TestServersCommandAgainstAGateway(t *testing.T) {
	stable := httptest.NewServer(demo.Handler("stable"))
	t.Cleanup(stable.Close)
	canary := httptest.NewServer(demo.Handler("canary"))
	t.Cleanup(canary.Close)
	url := serveForCLI(t, fmt.Sprintf("general_settings: {master_key: sk-cli-ops}\nmcp_servers:\n  demo: {url: %s/mcp}\n", stable.URL))
	t.Setenv("MCPBUS_MASTER_KEY", "sk-cli-ops")
	t.Setenv("MCPBUS_URL", url)

	step := func(want string, args ...string) string {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("mcpbus %s: exit %d, stdout %q, stderr %q; want %q", strings.Join(args, " "), code, out, errOut, want)
		}
		return out
	}
	listRow := func() string {
		t.Helper()
		out := step("NAME", "servers", "list")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "demo ") {
				return strings.Join(strings.Fields(l), " ")
			}
		}
		t.Fatalf("no demo row in %q", out)
		return ""
	}
	if row := listRow(); row != "demo - serving - config" {
		t.Fatalf("list before: %q", row)
	}
	step("demo drained", "servers", "drain", "demo")
	if row := listRow(); row != "demo - drained - config" {
		t.Fatalf("list after drain: %q", row)
	}
	step("demo undrained", "servers", "undrain", "demo", "--url", url)
	step("canary 25% "+canary.URL+"/mcp", "servers", "canary", "demo", "--url", canary.URL+"/mcp", "--percent", "25")
	if row := listRow(); row != "demo - serving 25% "+canary.URL+"/mcp config" {
		t.Fatalf("list with a canary: %q", row)
	}
	step("canary 60%", "servers", "canary", "demo", "--percent", "60", "--gateway", url)
	step("promoted", "servers", "promote", "demo")
	if row := listRow(); row != "demo - serving - config" {
		t.Fatalf("list after promote: %q", row)
	}
	step("canary 5%", "servers", "canary", "demo", "--url", stable.URL+"/mcp", "--percent", "5")
	step("canary removed", "servers", "canary", "demo", "--off")
	if row := listRow(); row != "demo - serving - config" {
		t.Fatalf("list after --off: %q", row)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"servers", "canary", "demo", "--percent", "101"}, "--percent 101: want a whole number from 0 to 100"},
		{[]string{"servers", "canary", "demo", "--off", "--percent", "5"}, "--off takes no"},
		{[]string{"servers", "canary", "demo"}, "usage: mcpbus servers canary NAME"},
		{[]string{"servers", "drain"}, "usage: mcpbus servers drain NAME"},
		{[]string{"servers", "drain", "nope"}, "MCP server 'nope' does not exist"},
		{[]string{"servers", "promote", "demo"}, "MCP server 'demo' has no canary to promote"},
		{[]string{"servers", "canary", "demo", "--url", "ftp://x/mcp"}, "mcp_servers.demo.canary_url: must be an http(s) URL"},
		{[]string{"servers", "restart", "demo"}, `unknown subcommand "restart"`},
	} {
		code, out, errOut := cli(c.args...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("mcpbus %s: exit %d, stdout %q, stderr %q; want an error containing %q", strings.Join(c.args, " "), code, out, errOut, c.want)
		}
	}
	t.Setenv("MCPBUS_MASTER_KEY", "")
	if code, _, errOut := cli("servers", "list"); code == 0 || !strings.Contains(errOut, "no master key: set MCPBUS_MASTER_KEY") {
		t.Errorf("without a key: exit %d, %q", code, errOut)
	}
}
