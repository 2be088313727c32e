package bustest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Cluster starts n real nats-server nodes with JetStream, clustered over
// loopback (each its own store in t.TempDir()), waits until JetStream has a
// meta leader, and stops them when the test ends. ClusterConn dials all of them.
func Cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	routes := make([]string, n)
	ports := make([]int, n)
	for i := range n {
		ports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	var routeURLs []*url.URL
	for _, r := range routes {
		u, _ := url.Parse(r)
		routeURLs = append(routeURLs, u)
	}
	nodes := make([]*server.Server, n)
	for i := range n {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("node-%d", i), Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 256 << 20,
			Cluster: server.ClusterOpts{Name: "mcpbus-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routeURLs,
		})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		go ns.Start()
		nodes[i] = ns
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	for i, ns := range nodes {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("node %d not ready", i)
		}
	}
	Eventually(t, 30*time.Second, "a JetStream meta leader that knows every node, all nodes current", func() bool {
		leader := false
		for _, ns := range nodes {
			if !ns.JetStreamIsCurrent() {
				return false
			}
			if ns.JetStreamIsLeader() {
				leader = len(ns.JetStreamClusterPeers()) == n
			}
		}
		return leader
	})
	return nodes
}

// ClusterConn connects to every node of a cluster (as a service given the
// whole --nats list does), closed when the test ends.
func ClusterConn(t testing.TB, nodes []*server.Server) *nats.Conn {
	t.Helper()
	urls := make([]string, len(nodes))
	for i, ns := range nodes {
		urls[i] = ns.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name(t.Name()))
	if err != nil {
		t.Fatalf("connect to the cluster: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
