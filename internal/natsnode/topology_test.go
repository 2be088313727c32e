package natsnode

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// nodeCert writes a certificate for 127.0.0.1 that serves and dials (a
// cluster node is both) and its key; it returns the ServerTLS naming them.
func (p *pki) nodeCert(t *testing.T, serial int64) ServerTLS {
	t.Helper()
	der, key := p.sign(t, serial, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	kDER, _ := x509.MarshalECPrivateKey(key)
	name := fmt.Sprintf("node%d", serial)
	return ServerTLS{Cert: p.write(t, name+".pem", "CERTIFICATE", der), Key: p.write(t, name+"-key.pem", "EC PRIVATE KEY", kDER), CA: p.caFile}
}

// freePort is a loopback host:port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Without a certificate no listener leaves loopback; the error names the
// listener and what to do.
func TestListenersLeaveLoopbackOnlyWithTLS(t *testing.T) {
	cases := map[string]EmbeddedOptions{
		"nats listen address":    {Listen: "0.0.0.0:0"},
		"nats cluster address":   {ClusterListen: "0.0.0.0:6222"},
		"nats leaf node address": {LeafListen: "[::]:7422"},
	}
	for want, o := range cases {
		o.DataDir = t.TempDir()
		ns, err := StartEmbedded(o)
		if err == nil {
			ns.Shutdown()
			t.Errorf("%s: started off loopback without TLS", want)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("error %q, want it to name the %s and loopback", err, want)
		}
	}
	p := newPKI(t)
	node := p.nodeCert(t, 10)
	ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: "0.0.0.0:0", TLS: node})
	if err != nil {
		t.Fatalf("with a certificate: %v", err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
}

// A connector reaches its hub over TLS, trusting the hub's CA; one that
// does not trust it stays out.
func TestConnectorLeafOverTLS(t *testing.T) {
	p := newPKI(t)
	users := []bus.BusUser{
		{User: "router1", Password: "router-password-0123456789", Roles: []bus.Role{bus.RoleRouter}},
		{User: "laptop", Password: connectorPassword, Roles: []bus.Role{bus.RoleConnector}, Servers: []string{"mine"}},
	}
	hub, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", LeafListen: "127.0.0.1:0", Users: users, TLS: p.nodeCert(t, 11)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Shutdown(); hub.WaitForShutdown() })
	hubURL := LeafURL(hub)
	if !strings.HasPrefix(hubURL, "tls://") {
		t.Fatalf("leaf URL %s: want tls://", hubURL)
	}
	start := func(ca string) {
		leaf, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), NoJetStream: true, Name: "laptop",
			Leaf: &LeafRemote{URL: hubURL, User: "laptop", Password: connectorPassword, TLSCA: ca}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { leaf.Shutdown(); leaf.WaitForShutdown() })
	}
	untrusting := newPKI(t)
	start(untrusting.caFile)
	start(p.caFile)
	eventually(t, func() error {
		if n := hub.NumLeafNodes(); n != 1 {
			return errors.New("want exactly the connector that trusts the hub's CA")
		}
		return nil
	})
	router, err := Connect(hub.ClientURL(), ConnectOptions{Name: "router", User: "router1", Password: "router-password-0123456789", TLSCA: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	if !router.TLSRequired() {
		t.Fatal("the hub's client listener does not speak TLS")
	}
}

// Two nodes with certificates from one CA form a named cluster across
// their route listeners; JetStream answers in the domain they were given.
func TestClusterOverTLS(t *testing.T) {
	p := newPKI(t)
	a, b := p.nodeCert(t, 12), p.nodeCert(t, 13)
	n1, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Name: "n1", Listen: "127.0.0.1:0", TLS: a,
		ClusterListen: "127.0.0.1:0", ClusterName: "east", JetStreamDomain: "hub"})
	if err == nil {
		n1.Shutdown()
		t.Fatal("a cluster listener on port 0: other nodes could not name it")
	}
	// A clustered JetStream node is ready once it has peers: start both
	// at once, each routed to the other.
	p1, p2 := freePort(t), freePort(t)
	node := func(name, listen, peer string, cert ServerTLS) <-chan startResult {
		c := make(chan startResult, 1)
		go func() {
			ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Name: name, Listen: "127.0.0.1:0", TLS: cert,
				ClusterListen: listen, ClusterName: "east", JetStreamDomain: "hub", Routes: []string{"nats://" + peer}})
			c <- startResult{ns, err}
		}()
		return c
	}
	c1, c2 := node("n1", p1, p2, a), node("n2", p2, p1, b)
	r1, r2 := <-c1, <-c2
	for _, r := range []startResult{r1, r2} {
		if r.err != nil {
			t.Fatal(r.err)
		}
		ns := r.ns
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	n1, n2 := r1.ns, r2.ns
	eventually(t, func() error {
		if n1.NumRoutes() == 0 || n2.NumRoutes() == 0 {
			return errors.New("no route between the nodes")
		}
		return nil
	})
	if got := n1.ClusterName(); got != "east" {
		t.Fatalf("cluster name %q, want east", got)
	}
	nc1, err := Connect(n1.ClientURL(), ConnectOptions{Name: "c1", TLSCA: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer nc1.Close()
	nc2, err := Connect(n2.ClientURL(), ConnectOptions{Name: "c2", TLSCA: p.caFile})
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if _, err := nc1.Subscribe("x", func(m *nats.Msg) { _ = m.Respond([]byte("n1")) }); err != nil {
		t.Fatal(err)
	}
	_ = nc1.Flush()
	eventually(t, func() error { _, err := nc2.Request("x", nil, time.Second); return err })
	eventually(t, func() error { // once the nodes have elected a JetStream leader
		m, err := nc2.Request("$JS.hub.API.INFO", nil, time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(m.Data), `"domain":"hub"`) {
			return fmt.Errorf("JetStream info %s: want domain hub", m.Data)
		}
		return nil
	})
}

type startResult struct {
	ns  *server.Server
	err error
}
