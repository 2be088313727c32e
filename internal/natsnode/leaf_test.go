package natsnode

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

const connectorPassword = "connector-password-0123456789"

// startHub starts a hub that accepts leaf nodes and admits a router and
// the connector user "laptop" (servers mine), and connects the router.
func startHub(t *testing.T) (hub *server.Server, router *nats.Conn) {
	t.Helper()
	users := []bus.BusUser{
		{User: "router1", Password: "router-password-0123456789", Roles: []bus.Role{bus.RoleRouter}},
		{User: "laptop", Password: connectorPassword, Roles: []bus.Role{bus.RoleConnector}, Servers: []string{"mine"}},
	}
	hub, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Shutdown(); hub.WaitForShutdown() })
	router, err = Connect(hub.ClientURL(), ConnectOptions{Name: "router", User: "router1", Password: "router-password-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Close)
	return hub, router
}

// startConnector starts a connector's node that dials hub as laptop.
func startConnector(t *testing.T, hub *server.Server, password string) *server.Server {
	t.Helper()
	leaf, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), NoJetStream: true, Name: "laptop",
		Leaf: &LeafRemote{URL: LeafURL(hub), User: "laptop", Password: password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	return leaf
}

// serve answers every request on subject (queue group q) with "from leaf".
func serve(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	if _, err := nc.QueueSubscribe(subject, "q", func(m *nats.Msg) { _ = m.Respond([]byte("from leaf")) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A connector's node serves its own servers to the hub over a link it
// dialled; NATS itself refuses it another server's subjects, whatever it
// subscribes to.
func TestConnectorLeafServesOnlyItsServers(t *testing.T) {
	hub, router := startHub(t)
	leaf := startConnector(t, hub, connectorPassword)
	eventually(t, func() error {
		if hub.NumLeafNodes() != 1 {
			return errors.New("the connector has not joined")
		}
		return nil
	})
	local, err := ConnectInProcess(leaf, ConnectOptions{Name: "worker", User: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	serve(t, local, bus.ToolRPC("mine"))
	serve(t, local, bus.ToolRPC("theirs"))

	eventually(t, func() error {
		m, err := router.Request(bus.ToolRPC("mine"), []byte("{}"), time.Second)
		if err != nil {
			return err
		}
		if string(m.Data) != "from leaf" {
			return errors.New(string(m.Data))
		}
		return nil
	})
	if _, err := router.Request(bus.ToolRPC("theirs"), []byte("{}"), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a request to another server's subject: %v, want no responders (the hub must not route it to the connector)", err)
	}
	// The connector may not read what the hub's services send clients.
	got := make(chan string, 1)
	other := bus.ClientSubject(bus.StreamSubject("i1", "t1"), bus.GatewayToken)
	if _, err := local.Subscribe(other, func(m *nats.Msg) { got <- string(m.Data) }); err != nil {
		t.Fatal(err)
	}
	_ = local.Flush()
	if err := router.Publish(other, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	_ = router.Flush()
	if _, err := router.Request(bus.ToolRPC("mine"), []byte("{}"), time.Second); err != nil { // a round trip through the link
		t.Fatal(err)
	}
	select {
	case s := <-got:
		t.Fatalf("the connector received %q on %s", s, other)
	default:
	}
}

// A wrong password keeps the connector out; the connector user cannot log
// in as a client either.
func TestConnectorLeafNeedsItsPassword(t *testing.T) {
	hub, _ := startHub(t)
	refused := &logCapture{match: `authentication error - User "laptop"`, seen: make(chan struct{})}
	hub.SetLoggerV2(refused, false, false, false)
	startConnector(t, hub, "wrong-password-0123456789")
	select {
	case <-refused.seen:
	case <-time.After(20 * time.Second):
		t.Fatal("the hub did not refuse a connector with a wrong password")
	}
	if n := hub.NumLeafNodes(); n != 0 {
		t.Fatalf("%d leaf nodes joined with a wrong password", n)
	}
	_, err := Connect(hub.ClientURL(), ConnectOptions{Name: "x", User: "laptop", Password: connectorPassword})
	if err == nil || !strings.Contains(err.Error(), "Authorization") {
		t.Fatalf("the connector user connected as a client: %v", err)
	}
}

// logCapture is a nats-server logger that closes seen at the first error
// containing match.
type logCapture struct {
	match string
	once  sync.Once
	seen  chan struct{}
}

func (l *logCapture) Errorf(format string, v ...any) {
	if strings.Contains(fmt.Sprintf(format, v...), l.match) {
		l.once.Do(func() { close(l.seen) })
	}
}
func (l *logCapture) Noticef(string, ...any) {}
func (l *logCapture) Warnf(string, ...any)   {}
func (l *logCapture) Fatalf(string, ...any)  {}
func (l *logCapture) Debugf(string, ...any)  {}
func (l *logCapture) Tracef(string, ...any)  {}

// eventually polls f until it returns nil (bustest.Eventually, which
// imports this package).
func eventually(t *testing.T, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatal(err)
}
