package natsnode

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedOptions configures the in-process NATS server of `mcpbus serve`.
type EmbeddedOptions struct {
	// DataDir holds the JetStream file store (DataDir/jetstream).
	DataDir string
	// Listen is a loopback host:port for CLIs, dashboards and extra workers, or
	// "" / "off" for in-process connections only. Port 0 picks a free port.
	Listen string
	// MaxMemory and MaxStore bound JetStream (bytes). Zero means the defaults.
	MaxMemory int64
	MaxStore  int64
	// Users may connect (natsauth.go): the in-process services' users and
	// the ones configured for other processes. None (and no NATSUsers): no
	// authentication, for tests and a connector's in-process node only.
	Users []bus.BusUser
	// NATSUsers may connect too: users as nats-server reads them from an
	// authorization block that `mcpbus nats-config` wrote.
	NATSUsers []*server.User
	// Name is the server's name, unique in a cluster (default "mcpbus").
	Name string
	// ClusterListen, if set, makes the server a node of a NATS cluster
	// named ClusterName (default "mcpbus"): its route listener, joined to
	// Routes (nats://host:port of the other nodes' route listeners).
	ClusterListen string
	ClusterName   string
	Routes        []string
	// JetStreamDomain names this node's JetStream domain (empty: none).
	JetStreamDomain string
	// LeafListen, if set, accepts connectors (`mcpbus connector`) as leaf
	// nodes on this host:port; they log in as bus users of the connector
	// role.
	LeafListen string
	// TLS, when it names a certificate, is shown on every listener (client,
	// route, leaf) and lets them leave loopback; routes then verify each
	// other against TLS.CA (topology.go).
	TLS ServerTLS
	// Leaf, if set, makes this node a leaf of a hub it dials (outbound
	// only): a connector's node. NoJetStream leaves JetStream to the hub.
	Leaf        *LeafRemote
	NoJetStream bool
}

// Default JetStream limits: small, explicit, and enough for the registry, keys,
// sessions and a usage stream on a laptop. MaxPayload bounds one bus message and
// so one MCP message through the gateway (NATS's own default is 1 MiB).
const (
	DefaultMaxMemory = 256 << 20
	DefaultMaxStore  = 2 << 30
	MaxPayload       = 8 << 20
)

// StartEmbedded starts nats-server in this process with JetStream on o.DataDir and
// waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "mcpbus",
		JetStream:          !o.NoJetStream,
		StoreDir:           filepath.Join(o.DataDir, "jetstream"),
		JetStreamMaxMemory: o.MaxMemory,
		JetStreamMaxStore:  o.MaxStore,
		MaxPayload:         MaxPayload,
		NoSigs:             true,
		NoLog:              true,
	}
	if opts.JetStreamMaxMemory == 0 {
		opts.JetStreamMaxMemory = DefaultMaxMemory
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = DefaultMaxStore
	}
	if o.Listen == "" || o.Listen == "off" {
		opts.DontListen = true
	} else {
		host, p, err := listenPort("nats listen address", o.Listen, o.TLS, "use --nats-listen off, or give the node a certificate (--nats-server-tls-cert, --nats-server-tls-key)")
		if err != nil {
			return nil, err
		}
		if p == 0 {
			p = server.RANDOM_PORT
		} else if ln, err := net.Listen("tcp", o.Listen); err != nil {
			// nats-server would only log it and never become ready.
			return nil, fmt.Errorf("nats listen address %s: %w (another mcpbus on this machine? use --nats-listen off, or another port)", o.Listen, err)
		} else {
			_ = ln.Close()
		}
		opts.Host, opts.Port = host, p
	}
	opts.Users = bus.NATSUsers(o.Users)
	askers := bus.AskerInboxes(o.Users)
	for _, u := range o.NATSUsers {
		u = cloneUser(u)
		if bus.IsConnector(u) {
			bus.WidenConnector(u, askers) // this process's own services ask too
		}
		opts.Users = append(opts.Users, u)
	}
	if o.Name != "" {
		opts.ServerName = o.Name
	}
	if err := topologyOptions(opts, o); err != nil { // topology.go
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 10s (data dir %s)", o.DataDir)
	}
	return ns, nil
}

// ConnectOptions say who connects.
type ConnectOptions struct {
	// Name is the connection's name (in monitoring and metrics).
	Name string
	// User and Password authenticate to a server with users (the embedded
	// one, or an external one configured so); a user name in an external
	// URL (nats://user:pass@host) works too.
	User, Password string
	// CredsFile is a NATS .creds file (a JWT and its nkey), for clusters
	// secured with an operator; NKeyFile an nkey seed file (secure.go).
	CredsFile string
	NKeyFile  string
	// TLSCA verifies the servers; TLSCert and TLSKey are the client
	// certificate shown to servers that ask for one.
	TLSCA, TLSCert, TLSKey string
	// Log gets the connection's asynchronous errors (permission
	// violations: a request to a subject the user may not publish to is
	// dropped and times out, so it is logged); nil: slog.Default().
	Log *slog.Logger
}

func (o ConnectOptions) natsOptions(url string) ([]nats.Option, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	opts := append([]nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1)}, connEvents(o.Name, log)...) // connlog.go
	user := o.User
	if user == "" {
		if u, err := neturl.Parse(strings.Split(url, ",")[0]); err == nil && u.User != nil {
			user = u.User.Username()
		}
	}
	sec, err := o.security()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	if user != "" && bus.ValidToken(user) {
		// The only replies this user may subscribe to (RolePermissions).
		opts = append(opts, nats.CustomInboxPrefix(bus.InboxPrefix(user)))
	}
	return opts, nil
}

// ConnectInProcess connects to an embedded server without a socket.
func ConnectInProcess(ns *server.Server, o ConnectOptions) (*nats.Conn, error) {
	opts, err := o.natsOptions("")
	if err != nil {
		return nil, err
	}
	return nats.Connect("", append(opts, nats.InProcessServer(ns))...)
}

// Connect connects to an external NATS server (or cluster: comma-separated URLs).
func Connect(url string, o ConnectOptions) (*nats.Conn, error) {
	opts, err := o.natsOptions(url)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", bus.RedactURL(url), err)
	}
	nc, err := nats.Connect(url, append(opts, nats.RetryOnFailedConnect(false))...)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("connect to NATS at %s: %w: join as a user of general_settings.mcp_bus_users (%s and %s), with a .creds file (%s) or an nkey seed (%s)", bus.RedactURL(url), err, EnvUser, EnvPassword, EnvCreds, EnvNKey)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", bus.RedactURL(url), err)
	}
	return nc, nil
}

// cloneUser copies u deeply enough to widen its publish permissions.
func cloneUser(u *server.User) *server.User {
	c := *u
	if u.Permissions != nil {
		p := *u.Permissions
		if p.Publish != nil {
			pub := *p.Publish
			pub.Allow = slices.Clone(pub.Allow)
			p.Publish = &pub
		}
		c.Permissions = &p
	}
	return &c
}
