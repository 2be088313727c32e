package compose

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// nodeOptions reads a NATS node's config file as nats-server does in its
// container: its mounts (the bus users block nats-users wrote among them) and
// its environment (the route password, the route URLs).
func nodeOptions(t *testing.T, s types.ServiceConfig, vols volumes) *server.Options {
	t.Helper()
	root := rootfs(t, s, vols)
	for k, v := range env(s) {
		t.Setenv(k, v)
	}
	o, err := server.ProcessConfigFile(filepath.Join(root, natsConfigPath(t, s)))
	if err != nil {
		t.Fatalf("NATS node %s: %v", s.Name, err)
	}
	return o
}

// The cluster an operator gets: 3 nodes on the nats image, each with
// JetStream on a volume of its own, routes (authenticated) to the other two,
// one cluster name, and the bus users; every mcpbus service joins all three.
func TestNATSClusterOfThree(t *testing.T) {
	p := loadProject(t)
	nodes := natsNodes(p)
	if len(nodes) != 3 {
		t.Fatalf("%d NATS nodes (services on the nats image), want 3", len(nodes))
	}
	vols := volumes{}
	runUsersInit(t, p, vols)
	opts := map[string]*server.Options{}
	for _, n := range nodes {
		opts[n.Name] = nodeOptions(t, n, vols)
	}
	var clientURLs []string
	stores := map[string]string{}
	for _, n := range nodes {
		o := opts[n.Name]
		if o.ServerName != n.Name {
			t.Errorf("node %s: server_name %q, want the service's name (unique in the cluster)", n.Name, o.ServerName)
		}
		if o.Cluster.Name != opts[nodes[0].Name].Cluster.Name || o.Cluster.Name == "" {
			t.Errorf("node %s: cluster name %q, want one name for all 3", n.Name, o.Cluster.Name)
		}
		if !o.JetStream {
			t.Errorf("node %s: JetStream is off", n.Name)
		}
		// The store is on a named volume of this node alone.
		vol := ""
		for _, m := range n.Volumes {
			if m.Type == types.VolumeTypeVolume && !m.ReadOnly && strings.HasPrefix(o.StoreDir+"/", m.Target+"/") {
				vol = m.Source
			}
		}
		if vol == "" {
			t.Errorf("node %s: JetStream store_dir %s is on no writable named volume: its state goes with the container", n.Name, o.StoreDir)
		} else if other, ok := stores[vol]; ok {
			t.Errorf("nodes %s and %s share the JetStream volume %s", other, n.Name, vol)
		}
		stores[vol] = n.Name
		if o.Cluster.Username == "" || o.Cluster.Password == "" {
			t.Errorf("node %s: routes do not authenticate: any container on the network could join the cluster", n.Name)
		}
		var peers []string
		for _, r := range o.Routes {
			pw, _ := r.User.Password()
			if r.User.Username() != o.Cluster.Username || pw != o.Cluster.Password {
				t.Errorf("node %s: route %s does not carry the cluster's route credentials", n.Name, r.Redacted())
			}
			peer := opts[r.Hostname()]
			if peer == nil {
				t.Errorf("node %s: route to %s, which is no node", n.Name, r.Redacted())
				continue
			}
			if r.Port() != strconv.Itoa(peer.Cluster.Port) {
				t.Errorf("node %s: route %s, but %s listens for routes on %d", n.Name, r.Redacted(), r.Hostname(), peer.Cluster.Port)
			}
			peers = append(peers, r.Hostname())
		}
		slices.Sort(peers)
		var want []string
		for _, m := range nodes {
			if m.Name != n.Name {
				want = append(want, m.Name)
			}
		}
		if !slices.Equal(peers, want) {
			t.Errorf("node %s: routes to %v, want %v", n.Name, peers, want)
		}
		if len(o.Users) == 0 {
			t.Errorf("node %s: no bus users: anyone on the network could use every subject", n.Name)
		}
		if !strings.Contains(strings.Join(n.HealthCheck.Test, " "), fmt.Sprintf("http://127.0.0.1:%d/healthz", o.HTTPPort)) {
			t.Errorf("node %s: health check %q does not probe the monitoring port %d", n.Name, n.HealthCheck.Test, o.HTTPPort)
		}
		if dep, ok := n.DependsOn["nats-users"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("node %s: does not wait for nats-users to write the bus users", n.Name)
		}
		clientURLs = append(clientURLs, fmt.Sprintf("nats://%s:%d", n.Name, o.Port))
	}
	// Every mcpbus process joins the cluster through all three nodes.
	want := strings.Join(clientURLs, ",")
	for _, s := range mcpbusServices(p) {
		c := parseCommand(t, s.Name, s.Command)
		if c.sub == "demo-upstream" {
			continue
		}
		if c.flags["nats"] != want {
			t.Errorf("service %s: --nats %q, want %q", s.Name, c.flags["nats"], want)
		}
	}
}
