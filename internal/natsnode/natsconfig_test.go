package natsnode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// A nats-server that includes the generated block admits each bus user with
// its password and holds it to its role: a worker for one server cannot
// serve another's calls nor answer key verification, which auth can. The
// file holds no password.
func TestServerConfigHoldsUsersToTheirRoles(t *testing.T) {
	users := []bus.BusUser{
		{User: "worker-gh", Password: "worker-password-0123456789", Roles: []bus.Role{bus.RoleWorkers}, Servers: []string{"github"}},
		{User: "auth-svc", Password: "auth-password-0123456789", Roles: []bus.Role{bus.RoleAuth}},
		{User: "mcpbus-router", Password: "in-process", Roles: []bus.Role{bus.RoleRouter}, InProcess: true},
	}
	block, err := ServerConfig(users, "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if strings.Contains(string(block), u.Password) {
			t.Fatalf("the block holds %s's password", u.User)
		}
	}
	if strings.Contains(string(block), "mcpbus-router") {
		t.Fatal("the block holds an in-process user")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mcpbus-users.conf"), block, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("listen: 127.0.0.1:-1\ninclude ./mcpbus-users.conf\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("nats-server reads the block: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("not ready")
	}

	join := func(u bus.BusUser) (*nats.Conn, chan error) {
		errs := make(chan error, 16)
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(u.User, u.Password),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatalf("%s joins: %v", u.User, err)
		}
		t.Cleanup(nc.Close)
		return nc, errs
	}
	refused := func(what string, errs chan error, subject string) {
		t.Helper()
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") || !strings.Contains(err.Error(), subject) {
				t.Errorf("%s: %v", what, err)
			}
		case <-time.After(30 * time.Second): // only a refusal never reported waits this long
			t.Errorf("%s: not refused", what)
		}
	}
	worker, werrs := join(users[0])
	if _, err := worker.SubscribeSync(bus.ToolRPC("github")); err != nil {
		t.Fatal(err)
	}
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := worker.SubscribeSync(bus.ToolRPC("gitlab")); err != nil {
		t.Fatal(err)
	}
	refused("the worker serves another server", werrs, bus.ToolRPC("gitlab"))
	if _, err := worker.SubscribeSync(bus.SubjectAuthVerify); err != nil {
		t.Fatal(err)
	}
	refused("the worker answers key verification", werrs, bus.SubjectAuthVerify)

	auth, aerrs := join(users[1])
	if _, err := auth.SubscribeSync(bus.SubjectAuthVerify); err != nil {
		t.Fatal(err)
	}
	if err := auth.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-aerrs:
		t.Errorf("auth answering key verification: %v", err)
	default:
	}
	if _, err := nats.Connect(ns.ClientURL(), nats.UserInfo("worker-gh", "wrong")); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("a wrong password: %v", err)
	}
}

func TestServerConfigNeedsUsers(t *testing.T) {
	if _, err := ServerConfig(nil, "config.yaml"); err == nil || !strings.Contains(err.Error(), "mcp_bus_users") {
		t.Fatalf("no users: %v", err)
	}
}
