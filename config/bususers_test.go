package config

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestBusUsers(t *testing.T) {
	env := mapEnv(map[string]string{"PW": "a-password-of-sixteen"})
	f, err := Parse("config.yaml", []byte(`general_settings:
  mcp_bus_users:
    - {user: worker-eu, password: os.environ/PW, roles: [workers], servers: [github]}
    - user: dashboard
      password: literal-password-0123
      roles: [usage]
`), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.BusUsers) != 2 || f.BusUsers[0].User != "worker-eu" || f.BusUsers[0].Password != "a-password-of-sixteen" ||
		f.BusUsers[0].Roles[0] != bus.RoleWorkers || f.BusUsers[0].Servers[0] != "github" || f.BusUsers[1].Roles[0] != bus.RoleUsage {
		t.Fatalf("bus users: %+v", f.BusUsers)
	}
	if len(f.Warnings) != 0 {
		t.Errorf("warnings: %q", f.Warnings)
	}
	for src, want := range map[string]string{
		`{user: a, password: os.environ/PW, roles: [root]}`:                                                      `general_settings.mcp_bus_users[0]: user "a": unknown role "root"`,
		`{user: a, password: short, roles: [usage]}`:                                                             `general_settings.mcp_bus_users[0]: user "a": password must be at least 16 characters`,
		`{user: a, password: os.environ/NOPE, roles: [usage]}`:                                                   `general_settings.mcp_bus_users[0].password: environment variable NOPE is not set`,
		`{user: a, password: os.environ/PW, roles: [usage], servers: [x]}`:                                       `servers applies to the workers and connector roles only`,
		`{user: a, password: os.environ/PW, roles: [usage], role: [usage]}`:                                      `general_settings.mcp_bus_users[0].role: unknown field`,
		`{user: mcpbus-auth, password: os.environ/PW, roles: [auth]}`:                                            `not start with mcpbus-`,
		`{user: "a b", password: os.environ/PW, roles: [usage]}`:                                                 `must be 1-128 characters`,
		`{user: a, password: os.environ/PW, roles: [usage]}, {user: a, password: os.environ/PW, roles: [usage]}`: `general_settings.mcp_bus_users[1].user: "a" is listed twice`,
	} {
		_, err := Parse("config.yaml", []byte("general_settings:\n  mcp_bus_users: ["+src+"]\n"), env)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "a-password-of-sixteen") {
			t.Errorf("%s: the error shows the password", src)
		}
	}
	if _, err := Parse("config.yaml", []byte("general_settings:\n  mcp_bus_users: {user: a}\n"), env); err == nil || !strings.Contains(err.Error(), "must be a list of users") {
		t.Errorf("a mapping: %v", err)
	}
}

// A process reads only the parts of the file it uses, so a variable only
// another process needs may be unset in it; the parts it reads are checked
// as always.
func TestParseParts(t *testing.T) {
	body := []byte(`general_settings:
  master_key: os.environ/PARTS_MASTER
  mcp_bus_users:
    - {user: worker-gh, password: os.environ/PARTS_UNSET_PW, roles: [workers], servers: [github]}
mcp_servers:
  github: {url: "https://api.example.com/mcp", auth_type: bearer_token, auth_value: os.environ/PARTS_UNSET_TOKEN}
`)
	env := mapEnv(map[string]string{"PARTS_MASTER": "sk-parts-master"})
	if _, err := Parse("config.yaml", body, env); err == nil || !strings.Contains(err.Error(), "PARTS_UNSET_PW") || !strings.Contains(err.Error(), "PARTS_UNSET_TOKEN") {
		t.Fatalf("whole file: %v, want both unset variables named", err)
	}
	f, err := ParseParts("config.yaml", body, env, Parts{SkipServers: true, SkipBusUsers: true})
	if err != nil {
		t.Fatalf("skipping servers and bus users: %v", err)
	}
	if f.MasterKey != "sk-parts-master" || len(f.Servers) != 0 || len(f.BusUsers) != 0 || len(f.Warnings) != 0 {
		t.Fatalf("read %q, %d servers, %d users, warnings %q", f.MasterKey, len(f.Servers), len(f.BusUsers), f.Warnings)
	}
	if _, err := ParseParts("config.yaml", body, env, Parts{SkipBusUsers: true}); err == nil || !strings.Contains(err.Error(), "PARTS_UNSET_TOKEN") || strings.Contains(err.Error(), "PARTS_UNSET_PW") {
		t.Fatalf("skipping bus users only: %v, want the token named and not the password", err)
	}
	if _, err := ParseParts("config.yaml", []byte("general_settings: {master_key: os.environ/PARTS_GONE}\n"), env, Parts{SkipServers: true, SkipBusUsers: true}); err == nil {
		t.Fatal("a part the process reads was not checked")
	}
}
