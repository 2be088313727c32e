package bus

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

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
		JetStream:          true,
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
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %v", o.Listen, err)
		}
		// The embedded server has no auth and services trust the envelope, so it
		// must not be reachable from other hosts; use an external, secured NATS
		// cluster (--nats) for that.
		if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("nats listen address %q: the embedded NATS server listens on loopback only (it has no auth); use --nats-listen off or an external secured NATS with --nats", o.Listen)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: bad port", o.Listen)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
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

// ConnectInProcess connects to an embedded server without a socket.
func ConnectInProcess(ns *server.Server, name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(ns), nats.Name(name), nats.MaxReconnects(-1))
}

// Connect connects to an external NATS server (or cluster: comma-separated URLs).
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(url), err)
	}
	return nc, nil
}
