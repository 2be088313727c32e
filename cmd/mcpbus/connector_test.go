package main

import (
	"strings"
	"testing"
)

// A connector that could not do its job stops at once, saying what to give.
func TestConnectorCommandErrors(t *testing.T) {
	ok := writeConfig(t, "mcp_servers:\n  files: {command: /bin/true}\n")
	wrong := writeConfig(t, "mcp_servers:\n  files: {transport: connector}\n")
	hub := []string{"--hub", "nats-leaf://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--name", "laptop", "--config", ok}, "pw", "--hub URL is required"},
		{append(hub, "--config", ok), "pw", "--name is required"},
		{append(hub, "--name", "laptop"), "pw", "--config FILE is required"},
		{append(hub, "--name", "laptop", "--config", wrong), "pw", "transport connector is for the gateway's config"},
		{append(hub, "--name", "laptop", "--config", ok, "--servers", "files,docs"), "pw", `--servers names "docs"`},
		{append(hub, "--name", "laptop", "--config", ok), "", "set MCPBUS_CONNECTOR_PASSWORD"},
		{[]string{"--hub", "nats-leaf://laptop:secret@127.0.0.1:1", "--name", "laptop", "--config", ok}, "pw", "not in the URL"},
	} {
		t.Setenv(EnvConnectorPassword, tc.env)
		code, _, errOut := runCLI(append([]string{"connector"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "secret") {
			t.Errorf("connector %v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}
