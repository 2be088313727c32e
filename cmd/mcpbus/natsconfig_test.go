package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `mcpbus nats-config` writes the config file's bus users as a nats-server
// authorization block, without their passwords; a file without users, or no
// file, is refused with what to do.
func TestNATSConfigCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	t.Setenv("NATS_CFG_TEST_PW", "worker-password-0123456789")
	if err := os.WriteFile(cfg, []byte(`general_settings:
  master_key: sk-test-master-0123456789
  mcp_bus_users:
    - {user: worker-gh, password: os.environ/NATS_CFG_TEST_PW, roles: [workers], servers: [github]}
mcp_servers:
  github: {url: "https://api.example.com/mcp"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("nats-config", "--config", cfg)
	if code != 0 || !strings.Contains(out, "authorization: {") || !strings.Contains(out, `"user": "worker-gh"`) ||
		!strings.Contains(out, `"mcpbus.v1.tool.github.rpc"`) {
		t.Fatalf("exit %d, %q\n%s", code, errOut, out)
	}
	if strings.Contains(out, "worker-password-0123456789") {
		t.Fatal("the block holds the password")
	}
	file := filepath.Join(dir, "users.conf")
	if code, out, errOut := runCLI("nats-config", "--config", cfg, "--out", file); code != 0 || !strings.Contains(out, "wrote "+file) {
		t.Fatalf("--out: exit %d, %q %q", code, out, errOut)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), `"user": "worker-gh"`) {
		t.Fatalf("written file: %v %q", err, b)
	}

	if code, _, errOut := runCLI("nats-config"); code != 1 || !strings.Contains(errOut, "--config FILE is required") {
		t.Fatalf("no config: exit %d, %q", code, errOut)
	}
	bare := filepath.Join(dir, "bare.yaml")
	if err := os.WriteFile(bare, []byte("general_settings:\n  master_key: sk-test-master-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("nats-config", "--config", bare); code != 1 || !strings.Contains(errOut, "mcp_bus_users") {
		t.Fatalf("no users: exit %d, %q", code, errOut)
	}
}
