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
	// Ports are picked free and then bound by the nodes; another process on
	// a busy machine can take one in between, so a cluster whose nodes do
	// not come up is torn down and started again on new ports.
	for attempt := 1; ; attempt++ {
		nodes, err := startCluster(t, n)
		if err == nil {
			t.Cleanup(func() {
				for _, ns := range nodes {
					ns.Shutdown()
					ns.WaitForShutdown()
				}
			})
			return nodes
		}
		if attempt == 3 {
			t.Fatalf("a %d-node cluster: %v", n, err)
		}
	}
}

func startCluster(t testing.TB, n int) ([]*server.Server, error) {
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
	nodes := make([]*server.Server, 0, n)
	stop := func() {
		for _, ns := range nodes {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}
	for i := range n {
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("node-%d", i), Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
			JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 256 << 20,
			Cluster: server.ClusterOpts{Name: "mcpbus-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routeURLs,
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("node %d: %w", i, err)
		}
		go ns.Start()
		nodes = append(nodes, ns)
	}
	for i, ns := range nodes {
		if !ns.ReadyForConnections(20 * time.Second) {
			stop()
			return nil, fmt.Errorf("node %d not ready", i)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader, current := false, true
		for _, ns := range nodes {
			current = current && ns.JetStreamIsCurrent()
			if ns.JetStreamIsLeader() {
				leader = len(ns.JetStreamClusterPeers()) == n
			}
		}
		if leader && current {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("no JetStream meta leader knowing all %d nodes within 30s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
