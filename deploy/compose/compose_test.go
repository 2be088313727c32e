package compose

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/mcpbus/mcpbus/config"
)

// What each mcpbus subcommand of the compose file is for; a service running
// anything else is a mistake.
var subcommands = []string{"auth", "registry", "router", "ingress", "worker", "demo-upstream", "nats-config"}

// metricsAddr is where a long-running mcpbus process serves /metrics and its
// health: --listen for the ingress and the demo upstream, else
// --admin-listen ("" when it has neither).
func metricsAddr(c command) string {
	if c.sub == "ingress" || c.sub == "demo-upstream" {
		return c.flags["listen"]
	}
	return c.flags["admin-listen"]
}

// Every mcpbus container runs a command the binary accepts, as the image's
// non-root user on a read-only root, with its files mounted and a health
// check that probes the port it listens on.
func TestServicesRunRealCommands(t *testing.T) {
	p := loadProject(t)
	for _, s := range p.AllServices() {
		for _, m := range s.Volumes {
			if m.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(m.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", s.Name, m.Source)
			}
		}
	}
	var seen int
	for _, s := range p.Services {
		if !isMcpbus(s) {
			continue
		}
		seen++
		c := parseCommand(t, s.Name, s.Command)
		if !slices.Contains(subcommands, c.sub) {
			t.Errorf("service %s runs mcpbus %s, want one of %v", s.Name, c.sub, subcommands)
		}
		if s.User != "65532:65532" || !s.ReadOnly || !slices.Contains(s.Tmpfs, "/tmp") {
			t.Errorf("service %s: user %q, read_only %v, tmpfs %v; want 65532:65532, a read-only root and /tmp", s.Name, s.User, s.ReadOnly, s.Tmpfs)
		}
		if f, ok := c.flags["config"]; ok {
			hostPath(t, s, f)
		}
		if addr := metricsAddr(c); addr != "" {
			// Other containers (the lb, Prometheus, the workers) reach it.
			if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" {
				t.Errorf("service %s listens on %s: other containers cannot reach it (want 0.0.0.0)", s.Name, addr)
			}
			if c.sub == "demo-upstream" && c.flags["allow-remote"] != "true" {
				t.Errorf("service %s: demo-upstream refuses %s without --allow-remote", s.Name, addr)
			}
		}
		if s.Restart == "no" || c.sub == "demo-upstream" {
			if s.HealthCheck == nil || !s.HealthCheck.Disable {
				// The image's HEALTHCHECK would probe 127.0.0.1:4000, where it serves nothing.
				t.Errorf("service %s serves no health endpoint: disable the image's health check", s.Name)
			}
			continue
		}
		checkHealth(t, s, c)
	}
	if seen < 7 {
		t.Errorf("only %d services run %s", seen, mcpbusImage)
	}
}

// checkHealth: s's health check is `mcpbus health --url` on the port s
// listens on.
func checkHealth(t *testing.T, s types.ServiceConfig, c command) {
	t.Helper()
	if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 3 ||
		s.HealthCheck.Test[0] != "CMD" || s.HealthCheck.Test[1] != "/usr/local/bin/mcpbus" {
		t.Errorf("service %s: health check %v, want [CMD /usr/local/bin/mcpbus health --url ...]", s.Name, s.HealthCheck)
		return
	}
	h := parseCommand(t, s.Name+" (health check)", s.HealthCheck.Test[2:])
	u, err := url.Parse(h.flags["url"])
	if h.sub != "health" || err != nil {
		t.Errorf("service %s: health check runs mcpbus %s --url %q", s.Name, h.sub, h.flags["url"])
		return
	}
	_, port, _ := net.SplitHostPort(metricsAddr(c))
	if port == "" || u.Port() != port || u.Hostname() != "127.0.0.1" || u.Path != "/health/readiness" {
		t.Errorf("service %s listens on %q but its health check probes %s", s.Name, metricsAddr(c), u)
	}
}

// Every process that loads config.yaml starts: `mcpbus config check` with
// exactly that container's environment and files.
func TestConfigLoadsInEveryContainer(t *testing.T) {
	p := loadProject(t)
	checked := 0
	for _, s := range mcpbusServices(p) {
		c := parseCommand(t, s.Name, s.Command)
		f, ok := c.flags["config"]
		if !ok {
			continue
		}
		root := rootfs(t, s, volumes{})
		cmd := exec.Command(binary(t), "config", "check", filepath.Join(root, f))
		cmd.Env = environ(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("service %s would not start: %s", s.Name, out)
		}
		checked++
	}
	if checked < 4 {
		t.Errorf("%d services load a config file, want auth, registry, router and ingress", checked)
	}
}

// gatewayConfig is config.yaml as the ingress reads it.
func gatewayConfig(t *testing.T, p *types.Project) *config.File {
	t.Helper()
	ing, err := p.GetService("ingress")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(hostPath(t, ing, parseCommand(t, ing.Name, ing.Command).flags["config"]))
	if err != nil {
		t.Fatal(err)
	}
	e := env(ing)
	cfg, err := config.Parse("config.yaml", data, func(k string) (string, bool) { v, ok := e[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// One host port, the lb's, in front of two ingress replicas; the ingress
// trusts X-Forwarded-For from the lb's address alone, one hop deep, and
// mcpbus keeps 3 copies of its state.
func TestOnePortInFrontOfTwoIngresses(t *testing.T) {
	p := loadProject(t)
	var published []string
	for _, s := range p.Services {
		for _, port := range s.Ports {
			if s.Name == "ingress-private" && port.HostIP == "127.0.0.1" {
				continue // the private gateway, on the host's loopback only
			}
			published = append(published, s.Name+":"+port.HostIP+":"+port.Published)
		}
	}
	if !slices.Equal(published, []string{"lb::4000"}) {
		t.Errorf("published host ports %v, want only the lb's 4000 (and the private ingress on 127.0.0.1)", published)
	}
	lb, err := p.GetService("lb")
	if err != nil {
		t.Fatal(err)
	}
	if len(lb.Ports) == 1 && lb.Ports[0].Target != 4000 {
		t.Errorf("lb publishes its port %d; haproxy.cfg binds 4000", lb.Ports[0].Target)
	}
	ing, _ := p.GetService("ingress")
	if n := replicas(ing); n != 2 {
		t.Errorf("ingress: %d replicas, want 2", n)
	}
	_, ingPort, _ := net.SplitHostPort(parseCommand(t, "ingress", ing.Command).flags["listen"])
	hap, err := os.ReadFile(hostPath(t, lb, "/usr/local/etc/haproxy/haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bind :4000", " ingress:" + ingPort + " check", "option forwardfor", "option httpchk GET /health/readiness", "nameserver dns 127.0.0.11:53"} {
		if !strings.Contains(string(hap), want) {
			t.Errorf("haproxy.cfg lacks %q (the ingress listens on %s)", want, ingPort)
		}
	}

	cfg := gatewayConfig(t, p)
	lbNet := lb.Networks["mcpbus"]
	if lbNet == nil || lbNet.Ipv4Address == "" {
		t.Fatal("the lb has no fixed address on the mcpbus network: nothing to trust X-Forwarded-For from")
	}
	lbAddr := netip.MustParseAddr(lbNet.Ipv4Address)
	if subnet := netip.MustParsePrefix(p.Networks["mcpbus"].Ipam.Config[0].Subnet); !subnet.Contains(lbAddr) {
		t.Errorf("the lb's address %s is outside the network's subnet %s", lbAddr, subnet)
	}
	if !cfg.UseXForwardedFor || cfg.XFFNumTrustedHops != 1 {
		t.Errorf("config.yaml: use_x_forwarded_for %v, mcp_xff_num_trusted_hops %d; want true and 1 (the lb appends once)", cfg.UseXForwardedFor, cfg.XFFNumTrustedHops)
	}
	if len(cfg.TrustedProxyRanges) != 1 || cfg.TrustedProxyRanges[0] != netip.PrefixFrom(lbAddr, 32) {
		t.Errorf("config.yaml: mcp_trusted_proxy_ranges %v, want exactly the lb's address %s/32", cfg.TrustedProxyRanges, lbAddr)
	}
	if cfg.NATSReplicas != len(natsNodes(p)) {
		t.Errorf("config.yaml: nats_replicas %d, want one copy per NATS node (%d)", cfg.NATSReplicas, len(natsNodes(p)))
	}
}

// Two workers for every server of config.yaml, on the demo upstream.
func TestTwoWorkersPerServer(t *testing.T) {
	p := loadProject(t)
	cfg := gatewayConfig(t, p)
	workers := map[string]int{}
	for _, s := range mcpbusServices(p) {
		c := parseCommand(t, s.Name, s.Command)
		if c.sub != "worker" {
			continue
		}
		if c.flags["servers"] == "" {
			t.Errorf("service %s: a worker for every server needs a bus user for every server; name them with --servers", s.Name)
		}
		for _, n := range strings.Split(c.flags["servers"], ",") {
			workers[n] += replicas(s)
		}
	}
	if len(cfg.Servers) == 0 {
		t.Fatal("config.yaml has no servers")
	}
	for _, srv := range cfg.Servers {
		if workers[srv.Name] != 2 {
			t.Errorf("server %s: %d workers, want 2", srv.Name, workers[srv.Name])
		}
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		up, err := p.GetService(u.Hostname())
		if err != nil {
			t.Errorf("server %s: %s names no service of compose.yaml", srv.Name, srv.URL)
			continue
		}
		if _, port, _ := net.SplitHostPort(parseCommand(t, up.Name, up.Command).flags["listen"]); port != u.Port() {
			t.Errorf("server %s: %s, but service %s listens on port %s", srv.Name, srv.URL, up.Name, port)
		}
	}
}

// `docker compose config -q` where the compose plugin is installed.
func TestDockerComposeConfig(t *testing.T) {
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		t.Skipf("no docker compose here (%v: %s); compose-go checked the file", err, strings.TrimSpace(string(out)))
	}
	for _, profile := range []string{"", "observability"} {
		args := []string{"compose", "--env-file", ".env.example", "-f", "compose.yaml"}
		if profile != "" {
			args = append(args, "--profile", profile)
		}
		if out, err := exec.Command("docker", append(args, "config", "-q")...).CombinedOutput(); err != nil {
			t.Errorf("docker %s config -q: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
