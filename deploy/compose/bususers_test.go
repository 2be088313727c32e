package compose

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// roleOf is the bus role a subcommand's process needs.
var roleOf = map[string]bus.Role{
	"auth": bus.RoleAuth, "registry": bus.RoleRegistry, "router": bus.RoleRouter,
	"ingress": bus.RoleIngress, "worker": bus.RoleWorkers,
}

// busUsers is bus-users.yaml as the nats-users one-shot reads it (its mount,
// its environment).
func busUsers(t *testing.T, p *types.Project) []bus.BusUser {
	t.Helper()
	s, err := p.GetService("nats-users")
	if err != nil {
		t.Fatal(err)
	}
	path := hostPath(t, s, parseCommand(t, s.Name, s.Command).flags["config"])
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	e := env(s)
	cfg, err := config.Parse("bus-users.yaml", data, func(k string) (string, bool) { v, ok := e[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.BusUsers
}

// Each service joins the bus as a user of its own holding exactly its role
// (a worker: only its servers), with the password the NATS nodes check; every
// user of bus-users.yaml is some service's, and the nodes know no others.
func TestEveryServiceHasItsOwnBusUser(t *testing.T) {
	p := loadProject(t)
	users := map[string]bus.BusUser{}
	for _, u := range busUsers(t, p) {
		users[u.User] = u
	}
	vols := volumes{}
	runUsersInit(t, p, vols)
	nats := map[string]*server.User{}
	for _, u := range nodeOptions(t, natsNodes(p)[0], vols).Users {
		nats[u.Username] = u
	}

	used := map[string]string{} // user -> service
	for _, s := range mcpbusServices(p) {
		c := parseCommand(t, s.Name, s.Command)
		role, joins := roleOf[c.sub]
		e := env(s)
		if !joins {
			if e["MCPBUS_NATS_USER"] != "" || e["MCPBUS_NATS_PASSWORD"] != "" {
				t.Errorf("service %s (mcpbus %s) joins no bus but holds bus credentials", s.Name, c.sub)
			}
			continue
		}
		name := e["MCPBUS_NATS_USER"]
		u, ok := users[name]
		if !ok {
			t.Errorf("service %s joins as %q, which bus-users.yaml does not list", s.Name, name)
			continue
		}
		if other, ok := used[name]; ok {
			t.Errorf("services %s and %s share the bus user %s", other, s.Name, name)
		}
		used[name] = s.Name
		if !slices.Equal(u.Roles, []bus.Role{role}) {
			t.Errorf("service %s: bus user %s has roles %v, want exactly [%s]", s.Name, name, u.Roles, role)
		}
		if role == bus.RoleWorkers && !slices.Equal(u.Servers, strings.Split(c.flags["servers"], ",")) {
			t.Errorf("service %s serves %s, but its bus user %s may serve %v", s.Name, c.flags["servers"], name, u.Servers)
		}
		if e["MCPBUS_NATS_PASSWORD"] != u.Password {
			t.Errorf("service %s: MCPBUS_NATS_PASSWORD is not the password bus-users.yaml gives %s", s.Name, name)
		}
		nu := nats[name]
		if nu == nil {
			t.Errorf("the NATS nodes have no user %s (service %s)", name, s.Name)
			continue
		}
		if bcrypt.CompareHashAndPassword([]byte(nu.Password), []byte(e["MCPBUS_NATS_PASSWORD"])) != nil {
			t.Errorf("the NATS nodes would refuse service %s: its password does not match user %s's hash", s.Name, name)
		}
		checkPermissions(t, name, nu.Permissions, u.Permissions())
	}
	for name := range users {
		if _, ok := used[name]; !ok {
			t.Errorf("bus user %s is no service's: a credential nobody needs", name)
		}
	}
	for name := range nats {
		if _, ok := users[name]; !ok {
			t.Errorf("the NATS nodes admit %s, which bus-users.yaml does not list", name)
		}
	}
}

// checkPermissions: what the node enforces for user is what mcpbus gives
// its roles.
func checkPermissions(t *testing.T, user string, got, want *server.Permissions) {
	t.Helper()
	if got == nil || got.Publish == nil || got.Subscribe == nil {
		t.Errorf("NATS user %s has no publish and subscribe limits", user)
		return
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if !slices.Equal(sorted(got.Publish.Allow), sorted(want.Publish.Allow)) || len(got.Publish.Deny) > 0 {
		t.Errorf("NATS user %s may publish %v, want %v", user, got.Publish.Allow, want.Publish.Allow)
	}
	if !slices.Equal(sorted(got.Subscribe.Allow), sorted(want.Subscribe.Allow)) || len(got.Subscribe.Deny) > 0 {
		t.Errorf("NATS user %s may subscribe %v, want %v", user, got.Subscribe.Allow, want.Subscribe.Allow)
	}
	if (got.Response == nil) != (want.Response == nil) ||
		(got.Response != nil && (got.Response.MaxMsgs != want.Response.MaxMsgs || got.Response.Expires != want.Response.Expires)) {
		t.Errorf("NATS user %s answers %+v, want %+v", user, got.Response, want.Response)
	}
}
