package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats-server/v2/server"
)

// nodeFlags say how the embedded NATS server of serve (and of `mcpbus
// nats`) joins others: a cluster, connectors on a leaf listener, a
// certificate that lets its listeners leave loopback
// (internal/natsnode/topology.go). None of them applies with --nats.
type nodeFlags struct {
	name, cluster, clusterName, routes, jsDomain, leafListen, users string
	tls                                                             natsnode.ServerTLS
}

func registerNodeFlags(fs *flag.FlagSet) *nodeFlags {
	n := &nodeFlags{}
	fs.StringVar(&n.name, "nats-name", "", "the embedded NATS server's name, unique in its cluster (default mcpbus)")
	fs.StringVar(&n.cluster, "nats-cluster", "", "make the embedded NATS server a cluster node: its route listener host:port (loopback, unless it has --nats-server-tls-*)")
	fs.StringVar(&n.clusterName, "nats-cluster-name", "", "with --nats-cluster: the cluster's name, the same on every node (default mcpbus)")
	fs.StringVar(&n.routes, "nats-routes", "", "with --nats-cluster: the other nodes' route URLs, comma-separated (nats://10.0.0.2:6222,...)")
	fs.StringVar(&n.jsDomain, "nats-js-domain", "", "the embedded server's JetStream domain (for hubs with JetStream leaf nodes; default none)")
	fs.StringVar(&n.leafListen, "nats-leafnodes", "", "accept connectors (mcpbus connector) as NATS leaf nodes on this host:port (loopback, unless it has --nats-server-tls-*; default off)")
	fs.StringVar(&n.tls.Cert, "nats-server-tls-cert", "", "certificate the embedded server shows on its client, route and leaf listeners; lets them leave loopback")
	fs.StringVar(&n.tls.Key, "nats-server-tls-key", "", "the key of --nats-server-tls-cert")
	fs.StringVar(&n.tls.CA, "nats-server-tls-ca", "", "CA that signed every cluster node's certificate: routes verify each other with it")
	fs.StringVar(&n.users, "nats-users", "", "nats-server authorization block (written by mcpbus nats-config) whose users may join, besides general_settings.mcp_bus_users")
	return n
}

// set reports whether any flag was given.
func (n *nodeFlags) set() bool {
	return *n != nodeFlags{}
}

// flagNames names the flags, for the error that refuses them with --nats.
const nodeFlagNames = "--nats-name, --nats-cluster*, --nats-routes, --nats-js-domain, --nats-leafnodes, --nats-server-tls-* and --nats-users"

// options is the embedded server's topology as the flags give it; the
// gateway adds its data directory, listener and users.
func (n *nodeFlags) options() (natsnode.EmbeddedOptions, error) {
	o := natsnode.EmbeddedOptions{Name: n.name, ClusterListen: n.cluster, ClusterName: n.clusterName, Routes: splitServers(n.routes),
		JetStreamDomain: n.jsDomain, LeafListen: n.leafListen, TLS: n.tls}
	if n.users != "" {
		users, err := readNATSUsers(n.users)
		if err != nil {
			return o, err
		}
		o.NATSUsers = users
	}
	return o, nil
}

// readNATSUsers reads the users of a nats-server authorization block, as
// `mcpbus nats-config` writes it: users and their permissions, nothing else.
func readNATSUsers(path string) ([]*server.User, error) {
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("--nats-users %s: %w", path, err)
	}
	if len(opts.Users) == 0 || len(opts.Nkeys) > 0 || opts.Username != "" || opts.Authorization != "" {
		return nil, errors.New("--nats-users " + path + ": want an authorization block with users only, as mcpbus nats-config writes it")
	}
	for _, u := range opts.Users {
		if u.Permissions == nil {
			// Every bus user is held to its role's subjects; one without
			// permissions could read every caller's key on the bus.
			return nil, fmt.Errorf("--nats-users %s: user %q has no permissions: regenerate the file with mcpbus nats-config", path, u.Username)
		}
		if strings.HasPrefix(u.Username, "mcpbus-") {
			return nil, fmt.Errorf("--nats-users %s: user %q: names starting with mcpbus- are the in-process services'", path, u.Username)
		}
	}
	return opts.Users, nil
}
