package natsnode

import (
	"net"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// A NATS listen port someone else holds fails the start at once, naming
// the address and the way out, instead of nats-server never becoming ready.
func TestEmbeddedListenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: addr})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a taken port")
	}
	if !strings.Contains(err.Error(), "nats listen address "+addr) || !strings.Contains(err.Error(), "--nats-listen off") {
		t.Fatalf("error %q, want the address and --nats-listen off", err)
	}
}

func TestEmbeddedRefusesNonLoopbackListener(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:4222"} {
		ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: addr})
		if err == nil {
			ns.Shutdown()
			t.Errorf("embedded NATS started on %s: it has no auth and must stay on loopback", addr)
		}
	}
}

// In-process users exist for the services of one process: their passwords
// are never written anywhere, and they cannot be used over a socket anyway.
func TestInProcessUsersStayInProcess(t *testing.T) {
	u := bus.BusUser{User: "mcpbus-auth", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleAuth}, InProcess: true}
	ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Users: []bus.BusUser{u}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if nc, err := Connect(ns.ClientURL(), ConnectOptions{Name: "tcp", User: u.User, Password: u.Password}); err == nil {
		nc.Close()
		t.Fatal("an in-process user connected over TCP")
	}
	nc, err := ConnectInProcess(ns, ConnectOptions{Name: "in", User: u.User, Password: u.Password})
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	defer nc.Close()
	if _, err := nats.Connect(ns.ClientURL()); err == nil {
		t.Fatal("no credentials: connected")
	}
}
