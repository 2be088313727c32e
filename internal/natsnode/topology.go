package natsnode

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
)

// How an embedded node joins others: a cluster (routes), a hub it dials as
// a leaf node (a connector's node), connectors it accepts as leaf nodes, and
// the certificate that lets any of its listeners leave loopback. Without a
// certificate every listener stays on loopback: passwords and bus traffic
// never cross a network in the clear.

// ServerTLS is the certificate a node shows on its client, route and leaf
// listeners. CA verifies the other nodes of its cluster, which show their
// certificates both ways; clients and leaf nodes are verified by their
// passwords (bus users).
type ServerTLS struct {
	Cert, Key, CA string
}

func (t ServerTLS) on() bool { return t.Cert != "" || t.Key != "" }

// LeafRemote is the hub a connector's node dials, outbound only.
type LeafRemote struct {
	// URL is the hub's leaf listener: nats-leaf://host:port, or tls://
	// (several, comma-separated, for the nodes of a hub cluster).
	URL string
	// User and Password are the connector's bus user; CredsFile a .creds
	// file instead, for operator-secured hubs.
	User, Password string
	CredsFile      string
	// TLSCA verifies the hub's certificate; with it, the link is TLS.
	TLSCA string
}

// tlsTimeout bounds a TLS handshake on any listener (seconds).
const tlsTimeout = 5

// listenPort checks a listener's address: host:port, and loopback unless
// the node has a certificate; fix says what to do instead.
func listenPort(what, addr string, t ServerTLS, fix string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %v", what, addr, err)
	}
	if ip, err := netip.ParseAddr(host); !t.on() && host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return "", 0, fmt.Errorf("%s %q: without TLS the embedded NATS server listens on loopback only (its passwords would cross the network in the clear); %s", what, addr, fix)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: bad port", what, addr)
	}
	return host, p, nil
}

// topologyOptions applies o's TLS, cluster, JetStream domain and leaf
// settings to opts.
func topologyOptions(opts *server.Options, o EmbeddedOptions) error {
	if o.TLS.on() {
		if o.TLS.Cert == "" || o.TLS.Key == "" {
			return errors.New("a NATS server certificate needs both --nats-server-tls-cert and --nats-server-tls-key")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLS.Cert, KeyFile: o.TLS.Key})
		if err != nil {
			return fmt.Errorf("NATS server certificate (--nats-server-tls-cert, --nats-server-tls-key): %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tc, tlsTimeout
	}
	if d := o.JetStreamDomain; d != "" {
		if !bus.ValidToken(d) {
			return fmt.Errorf("JetStream domain %q (--nats-js-domain): want 1-%d characters of A-Z a-z 0-9 _ -", bus.Shorten(d, 32), bus.MaxTokenLen)
		}
		opts.JetStreamDomain = d
	}
	if err := clusterOptions(opts, o); err != nil {
		return err
	}
	if err := leafListenOptions(opts, o); err != nil {
		return err
	}
	return leafRemoteOptions(opts, o.Leaf)
}

// clusterOptions makes opts a cluster node when o asks for one.
func clusterOptions(opts *server.Options, o EmbeddedOptions) error {
	if o.ClusterListen == "" {
		if len(o.Routes) > 0 {
			return errors.New("nats routes given without a cluster listener (--nats-cluster)")
		}
		return nil
	}
	host, p, err := listenPort("nats cluster address", o.ClusterListen, o.TLS, "give the node a certificate (--nats-server-tls-cert, --nats-server-tls-key, --nats-server-tls-ca), or run your own nats-server cluster (--nats)")
	if err != nil {
		return err
	}
	if p == 0 {
		return fmt.Errorf("nats cluster address %q: give a port", o.ClusterListen)
	}
	name := o.ClusterName
	if name == "" {
		name = "mcpbus"
	} else if !bus.ValidToken(name) {
		return fmt.Errorf("nats cluster name %q (--nats-cluster-name): want 1-%d characters of A-Z a-z 0-9 _ -", bus.Shorten(name, 32), bus.MaxTokenLen)
	}
	opts.Cluster = server.ClusterOpts{Name: name, Host: host, Port: p}
	if o.TLS.on() {
		// Nodes verify each other both ways: a route is a peer with every
		// permission, so only a certificate the CA signed may be one.
		if o.TLS.CA == "" {
			return errors.New("a cluster over TLS needs the CA that signed its nodes' certificates (--nats-server-tls-ca)")
		}
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.TLS.Cert, KeyFile: o.TLS.Key, CaFile: o.TLS.CA, Verify: true})
		if err != nil {
			return fmt.Errorf("NATS cluster TLS (--nats-server-tls-*): %w", err)
		}
		tc.RootCAs = tc.ClientCAs // also used when dialling the other nodes
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, tlsTimeout
	}
	for _, r := range o.Routes {
		u, err := neturl.Parse(strings.TrimSpace(r))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls") || u.Host == "" {
			return fmt.Errorf("nats route %q: want nats://host:port", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// leafListenOptions opens the leaf listener connectors dial.
func leafListenOptions(opts *server.Options, o EmbeddedOptions) error {
	if o.LeafListen == "" || o.LeafListen == "off" {
		return nil
	}
	host, p, err := listenPort("nats leaf node address", o.LeafListen, o.TLS, "give the node a certificate (--nats-server-tls-cert, --nats-server-tls-key) so connectors reach it over TLS")
	if err != nil {
		return err
	}
	if p == 0 {
		p = server.RANDOM_PORT
	} else if ln, err := net.Listen("tcp", o.LeafListen); err != nil {
		// nats-server would only log it and never become ready.
		return fmt.Errorf("nats leaf node address %s: %w (another mcpbus on this machine?)", o.LeafListen, err)
	} else {
		_ = ln.Close()
	}
	opts.LeafNode.Host, opts.LeafNode.Port = host, p
	if o.TLS.on() {
		opts.LeafNode.TLSConfig, opts.LeafNode.TLSTimeout = opts.TLSConfig.Clone(), tlsTimeout
	}
	return nil
}

// leafRemoteOptions makes opts a leaf node of the hub r names.
func leafRemoteOptions(opts *server.Options, r *LeafRemote) error {
	if r == nil {
		return nil
	}
	remote := &server.RemoteLeafOpts{Credentials: r.CredsFile, FirstInfoTimeout: 5 * time.Second}
	for _, raw := range strings.Split(r.URL, ",") {
		u, err := neturl.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "nats-leaf" && u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return fmt.Errorf("hub URL %q: want nats-leaf://host:port or tls://host:port", bus.RedactURL(raw))
		}
		if u.User != nil {
			return fmt.Errorf("hub URL %q: give the connector's password in MCPBUS_CONNECTOR_PASSWORD, not in the URL", bus.RedactURL(raw))
		}
		if r.User != "" {
			u.User = neturl.UserPassword(r.User, r.Password)
		}
		remote.TLS = remote.TLS || u.Scheme == "tls"
		remote.URLs = append(remote.URLs, u)
	}
	if r.User != "" && r.CredsFile != "" {
		return errors.New("give the connector one way to join its hub: a user and password, or a .creds file")
	}
	if r.TLSCA != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CaFile: r.TLSCA})
		if err != nil {
			return fmt.Errorf("hub CA (--hub-tls-ca) %s: %w", r.TLSCA, err)
		}
		tc.RootCAs, tc.ClientCAs = tc.ClientCAs, nil
		remote.TLS, remote.TLSConfig, remote.TLSTimeout = true, tc, tlsTimeout
	}
	opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, remote)
	return nil
}

// LeafURL is the URL connectors dial to reach ns's leaf listener ("" if it
// has none): its port as bound, so a listener on port 0 can be found.
func LeafURL(ns *server.Server) string {
	v, err := ns.Varz(nil)
	if err != nil || v.LeafNode.Port == 0 {
		return ""
	}
	scheme := "nats-leaf"
	if v.LeafNode.TLSRequired {
		scheme = "tls"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(v.LeafNode.Host, strconv.Itoa(v.LeafNode.Port)))
}
