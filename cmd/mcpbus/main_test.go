package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("CHECK_MASTER", "sk-check-SECRET")
	good := writeConfig(t, `
general_settings: {master_key: os.environ/CHECK_MASTER}
model_list: [{model_name: gpt, litellm_params: {model: bedrock/gpt}}]
mcp_servers:
  - server_name: github
    url: https://api.example.com/mcp
`)
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", good}, &out, &errOut); code != 0 {
		t.Fatalf("valid config: exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "ok: 1 MCP server(s); master key set") {
		t.Errorf("stdout = %q", out.String())
	}
	if !strings.Contains(errOut.String(), "model_list") {
		t.Errorf("the deployment mcpbus cannot serve was not warned about: %q", errOut.String())
	}

	for _, c := range []struct{ yaml, want string }{
		{"mcp_servers:\n  github:\n    url: ftp://files.example.com/mcp\n",
			"config.yaml: mcp_servers.github.url: must be an http(s) URL"},
		{"mcp_servers:\n  github:\n    url: https://api.example.com/mcp\n    auth_type: bearer_token\n    auth_value: os.environ/NOT_SET_ANYWHERE\n",
			"config.yaml: mcp_servers.github.auth_value: environment variable NOT_SET_ANYWHERE is not set"},
	} {
		out.Reset()
		errOut.Reset()
		if code := run([]string{"config", "check", writeConfig(t, c.yaml)}, &out, &errOut); code != 1 {
			t.Fatalf("bad config: exit %d, want 1", code)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("stderr lacks %q:\n%s", c.want, errOut.String())
		}
	}
	if code := run([]string{"config", "check"}, &out, &errOut); code != 1 {
		t.Errorf("config check without a file: exit %d", code)
	}
	if strings.Contains(out.String()+errOut.String(), "sk-check-SECRET") {
		t.Error("config check printed the master key")
	}
}

func TestServeRefusesOpenModeOffLoopback(t *testing.T) {
	cfg := writeConfig(t, "mcp_servers: {}\n")
	var out, errOut bytes.Buffer
	code := run([]string{"serve", "--config", cfg, "--host", "0.0.0.0", "--port", "0", "--data", t.TempDir(), "--nats-listen", "off"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "without general_settings.master_key") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming the master key", code, errOut.String())
	}
}

// serve stops cleanly when its context ends (what SIGINT and SIGTERM do): it
// returns nil, frees its port, and leaves the JetStream store on disk.
func TestServeShutsDownCleanly(t *testing.T) {
	data := t.TempDir()
	cfg := writeConfig(t, "general_settings: {master_key: sk-x}\nmcp_servers:\n  demo: {url: http://127.0.0.1:1/mcp}\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--config", cfg, "--listen", "127.0.0.1:0", "--data", data, "--nats-listen", "off"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	m := regexp.MustCompile(`mcpbus listening on http://(127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line = %q", line)
	}
	go io.Copy(io.Discard, pr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancel")
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("port %s still accepts connections after shutdown", m[1])
	}
	if _, err := os.Stat(filepath.Join(data, "jetstream")); err != nil {
		t.Errorf("no JetStream store in the data dir: %v", err)
	}
}

func TestListenAddr(t *testing.T) {
	for _, c := range []struct {
		listen, host string
		port         int
		want         string
	}{
		{"127.0.0.1:4000", "", 0, "127.0.0.1:4000"},
		{"127.0.0.1:4000", "0.0.0.0", 0, "0.0.0.0:4000"},
		{"127.0.0.1:4000", "", 8080, "127.0.0.1:8080"},
		{"127.0.0.1:4000", "::1", 9, "[::1]:9"},
	} {
		got, err := listenAddr(c.listen, c.host, c.port)
		if err != nil || got != c.want {
			t.Errorf("listenAddr(%q, %q, %d) = %q, %v; want %q", c.listen, c.host, c.port, got, err, c.want)
		}
	}
	if _, err := listenAddr("4000", "", 0); err == nil {
		t.Error("a listen address without a host:port was accepted")
	}
}

func TestDebugListenIsLoopbackOnly(t *testing.T) {
	if _, err := startDebug("0.0.0.0:0", nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("a non-loopback debug listener: %v", err)
	}
	stop, err := startDebug("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop()
}

// `mcpbus router` is `serve --services router`: it needs the NATS the other
// services use, and says so; an unknown service name is refused by name.
func TestServiceSubcommands(t *testing.T) {
	cfg := writeConfig(t, "general_settings: {master_key: sk-x}\nmcp_servers: {}\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"router", "--config", cfg, "--data", t.TempDir()}, "needs the NATS the others use: set --nats"},
		{[]string{"serve", "--config", cfg, "--services", "routr", "--nats", "nats://127.0.0.1:1"}, `unknown service "routr"`},
		{[]string{"nats", "--config", cfg, "--nats", "nats://127.0.0.1:1"}, "cannot be combined with --nats"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("mcpbus %v: exit %d, stderr %q; want exit 1 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
