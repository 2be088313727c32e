package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

const mapShape = `
mcp_servers:
  github:
    url: https://api.githubcopilot.com/mcp
    transport: streamable_http
    auth_type: bearer_token
    auth_value: os.environ/GITHUB_TOKEN
    static_headers: {X-Team: platform}
    extra_headers: [x-user-id]
    allowed_tools: [get_issue]
    timeout: 30
  internal-db:
    url: http://db.internal:8080/mcp
    transport: sse
    alias: db
    description: Internal database
    spec_version: 2025-06-18
    disallowed_tools: [drop_table]
    available_on_public_internet: true
    timeout: 500ms
`

const listShape = `
mcp_servers:
  - server_name: github
    url: https://api.githubcopilot.com/mcp
    transport: streamable_http
    auth_type: bearer_token
    auth_value: os.environ/GITHUB_TOKEN
    static_headers: {X-Team: platform}
    extra_headers: [x-user-id]
    allowed_tools: [get_issue]
    timeout: "30s"
  - name: internal-db
    url: http://db.internal:8080/mcp
    transport: sse
    alias: db
    description: Internal database
    spec_version: "2025-06-18"
    disallowed_tools: [drop_table]
    available_on_public_internet: "true"
    timeout: 0.5
`

var env1 = mapEnv(map[string]string{"GITHUB_TOKEN": "ghp_SECRET"})

func TestBothShapesLoadTheSameServers(t *testing.T) {
	want := []bus.ServerSpec{
		{
			Name: "github", URL: "https://api.githubcopilot.com/mcp", Transport: "http",
			AuthType: "bearer_token", AuthValue: "os.environ/GITHUB_TOKEN",
			StaticHeaders: map[string]string{"X-Team": "platform"}, ExtraHeaders: []string{"x-user-id"},
			AllowedTools: []string{"get_issue"}, Timeout: "30s", Source: "config",
		},
		{
			Name: "internal-db", URL: "http://db.internal:8080/mcp", Transport: "sse", Alias: "db",
			Description: "Internal database", SpecVersion: "2025-06-18",
			DisallowedTools: []string{"drop_table"}, Public: true, Timeout: "500ms", Source: "config",
		},
	}
	for name, src := range map[string]string{"map": mapShape, "list": listShape} {
		f, err := Parse("config.yaml", []byte(src), env1)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(f.Servers, want) {
			t.Errorf("%s shape:\n got %+v\nwant %+v", name, f.Servers, want)
		}
		if len(f.Warnings) != 0 {
			t.Errorf("%s shape: warnings %q", name, f.Warnings)
		}
	}
}

func TestEnvReferences(t *testing.T) {
	src := `
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
  mcp_tool_prefix_separator: os.environ/SEP
mcp_servers:
  github:
    url: os.environ/GITHUB_URL
    auth_type: bearer_token
    auth_value: os.environ/GITHUB_TOKEN
    static_headers:
      X-Org: os.environ/ORG
`
	env := map[string]string{
		"LITELLM_MASTER_KEY": "sk-SECRET-master",
		"SEP":                "--",
		"GITHUB_URL":         "https://api.example.com/mcp",
		"GITHUB_TOKEN":       "ghp_SECRET",
		"ORG":                "acme-SECRET",
	}
	f, err := Parse("config.yaml", []byte(src), mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if f.MasterKey != "sk-SECRET-master" {
		t.Errorf("master key not resolved: %q", f.MasterKey)
	}
	if f.ToolPrefixSeparator != "--" {
		t.Errorf("separator = %q", f.ToolPrefixSeparator)
	}
	s := f.Servers[0]
	if s.URL != "os.environ/GITHUB_URL" || s.AuthValue != "os.environ/GITHUB_TOKEN" || s.StaticHeaders["X-Org"] != "os.environ/ORG" {
		t.Errorf("references must stay unresolved in the spec: %+v", s)
	}
	up, err := Provision(s, mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if up.URL.String() != "https://api.example.com/mcp" || up.Header.Get("Authorization") != "Bearer ghp_SECRET" || up.Header.Get("X-Org") != "acme-SECRET" {
		t.Errorf("provisioned values not resolved: %v %v", up.URL, up.Header)
	}

	// A missing variable names the path and the variable, and never a value.
	delete(env, "GITHUB_TOKEN")
	_, err = Parse("config.yaml", []byte(src), mapEnv(env))
	want := "config.yaml: mcp_servers.github.auth_value: environment variable GITHUB_TOKEN is not set"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	var fe FieldError
	if !errors.As(err, &fe) || fe.Path != "mcp_servers.github.auth_value" {
		t.Errorf("errors.As FieldError: %+v", fe)
	}

	delete(env, "LITELLM_MASTER_KEY")
	_, err = Parse("config.yaml", []byte(src), mapEnv(env))
	if err == nil || !strings.Contains(err.Error(), "config.yaml: general_settings.master_key: environment variable LITELLM_MASTER_KEY is not set") {
		t.Errorf("missing master key: %v", err)
	}
}

func TestToolPrefixSeparator(t *testing.T) {
	f, err := Parse("c.yaml", nil, nil)
	if err != nil || f.ToolPrefixSeparator != "__" {
		t.Fatalf("default: %q %v", f.ToolPrefixSeparator, err)
	}
	src := []byte("general_settings:\n  mcp_tool_prefix_separator: '-'\n")
	f, err = Parse("c.yaml", src, nil)
	if err != nil || f.ToolPrefixSeparator != "-" {
		t.Fatalf("file: %q %v", f.ToolPrefixSeparator, err)
	}
	f, err = Parse("c.yaml", src, mapEnv(map[string]string{"MCP_TOOL_PREFIX_SEPARATOR": "."}))
	if err != nil || f.ToolPrefixSeparator != "." {
		t.Fatalf("env wins: %q %v", f.ToolPrefixSeparator, err)
	}
	_, err = Parse("c.yaml", src, mapEnv(map[string]string{"MCP_TOOL_PREFIX_SEPARATOR": ""}))
	if err == nil || err.Error() != "c.yaml: environment variable MCP_TOOL_PREFIX_SEPARATOR: must not be empty" {
		t.Fatalf("empty env separator: %v", err)
	}
}

func TestGeneralSettings(t *testing.T) {
	src := `
general_settings:
  master_key: sk-1234
  mcp_internal_ip_ranges: ["10.1.2.3/8", "fd00::/8", "192.168.1.7"]
  enable_mcp_registry: true
  mcp_stateless_protocol: true
  use_x_forwarded_for: "True"
  mcp_trusted_proxy_ranges: os.environ/PROXIES
`
	f, err := Parse("config.yaml", []byte(src), mapEnv(map[string]string{"PROXIES": "10.0.0.1/32, 172.16.0.0/12"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
	}
	if !reflect.DeepEqual(f.InternalIPRanges, want) {
		t.Errorf("internal ranges %v", f.InternalIPRanges)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("172.16.0.0/12")}
	if !reflect.DeepEqual(f.TrustedProxyRanges, wantProxies) {
		t.Errorf("proxy ranges %v", f.TrustedProxyRanges)
	}
	if f.MasterKey != "sk-1234" || !f.EnableMCPRegistry || !f.UseXForwardedFor || !f.StatelessProtocol {
		t.Errorf("settings: %+v", f)
	}
	if len(DefaultInternalIPRanges()) != 6 {
		t.Error("default ranges")
	}
}

func TestTimeoutAndTransportNormalised(t *testing.T) {
	cases := []struct{ in, want string }{
		{"30", "30s"}, {"0.5", "500ms"}, {`"2s"`, "2s"}, {`"500ms"`, "500ms"}, {"60", "1m0s"}, {`"45"`, "45s"},
	}
	for _, c := range cases {
		src := "mcp_servers:\n  a:\n    url: http://a.internal/mcp\n    timeout: " + c.in + "\n"
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := f.Servers[0].Timeout; got != c.want {
			t.Errorf("timeout %s: got %q want %q", c.in, got, c.want)
		}
	}
	for _, tr := range []string{"http", "streamable-http", "streamable_http", "streamablehttp", "Streamable-HTTP"} {
		src := "mcp_servers:\n  a:\n    url: http://a.internal/mcp\n    transport: " + tr + "\n"
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil || f.Servers[0].Transport != "http" {
			t.Errorf("transport %s: %v %+v", tr, err, f)
		}
	}
	// LiteLLM reads the transport whatever its case.
	for tr, want := range map[string]string{"SSE": "sse", "Sse": "sse", "HTTP": "http", "STDIO": "stdio"} {
		src := "mcp_servers:\n  a:\n    url: http://a.internal/mcp\n    command: x\n    transport: " + tr + "\n"
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil || f.Servers[0].Transport != want {
			t.Errorf("transport %s: %v %+v, want %s", tr, err, f, want)
		}
	}
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	src := `
x-common: &common
  transport: sse
  auth_type: api_key
  auth_value: os.environ/KEY
mcp_servers:
  a:
    <<: *common
    url: https://a.example.com/mcp
  b:
    <<: *common
    url: https://b.example.com/mcp
    transport: http
`
	f, err := Parse("config.yaml", []byte(src), mapEnv(map[string]string{"KEY": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if f.Servers[0].Transport != "sse" || f.Servers[1].Transport != "http" || f.Servers[1].AuthValue != "os.environ/KEY" {
		t.Errorf("merge: %+v", f.Servers)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "x-common") {
		t.Errorf("warnings: %q", f.Warnings)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "litellm.yaml")
	if err := os.WriteFile(path, []byte("mcp_servers:\n  a:\n    url: https://a.example.com/mcp\n    auth_type: magic\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := "litellm.yaml: mcp_servers.a.auth_type: must be one of none, api_key, bearer_token, basic, authorization, token, oauth2, aws_sigv4"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	t.Setenv("MCPBUS_TEST_TOKEN", "t0k")
	if err := os.WriteFile(path, []byte("mcp_servers:\n  a:\n    url: https://a.example.com/mcp\n    auth_type: token\n    auth_value: os.environ/MCPBUS_TEST_TOKEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil || len(f.Servers) != 1 {
		t.Fatalf("load: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "missing.yaml: ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestAllowStdioFromAPISetting(t *testing.T) {
	for src, want := range map[string]bool{
		"mcp_servers: {}\n": false,
		"general_settings: {mcp_allow_stdio_servers_from_api: true}\nmcp_servers: {}\n": true,
	} {
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil || f.AllowStdioFromAPI != want {
			t.Errorf("%q: AllowStdioFromAPI = %v, %v; want %v", src, f.AllowStdioFromAPI, err, want)
		}
	}
}

func TestXFFNumTrustedHops(t *testing.T) {
	f, err := Parse("config.yaml", nil, nil)
	if err != nil || f.XFFNumTrustedHops != 1 {
		t.Fatalf("default: %d %v", f.XFFNumTrustedHops, err)
	}
	ok := []struct {
		src  string
		env  map[string]string
		want int
	}{
		{"general_settings:\n  mcp_xff_num_trusted_hops: 2\n", nil, 2},
		{"general_settings:\n  mcp_xff_num_trusted_hops: \"3\"\n", nil, 3},
		{"general_settings:\n  mcp_xff_num_trusted_hops: os.environ/HOPS\n", map[string]string{"HOPS": " 4 "}, 4},
		{"general_settings:\n  mcp_xff_num_trusted_hops:\n", nil, 1},
	}
	for _, c := range ok {
		f, err := Parse("config.yaml", []byte(c.src), mapEnv(c.env))
		if err != nil || f.XFFNumTrustedHops != c.want {
			t.Errorf("%q: got %v %v, want %d", c.src, f, err, c.want)
		}
		if err == nil && len(f.Warnings) != 0 {
			t.Errorf("%q: warnings %q (the key must be known)", c.src, f.Warnings)
		}
	}
	const msg = "config.yaml: general_settings.mcp_xff_num_trusted_hops: must be a whole number, 1 or more (the number of proxies that append to X-Forwarded-For)"
	for _, v := range []string{"0", "-1", "1.5", "two", "\"\""} {
		_, err := Parse("config.yaml", []byte("general_settings:\n  mcp_xff_num_trusted_hops: "+v+"\n"), nil)
		if err == nil || err.Error() != msg {
			t.Errorf("%s: %v", v, err)
		}
	}
	_, err = Parse("config.yaml", []byte("general_settings:\n  mcp_xff_num_trusted_hops: os.environ/MISSING\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("missing env: %v", err)
	}
	_, err = Parse("config.yaml", []byte("general_settings:\n  mcp_xff_num_trusted_hops: [1]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "mcp_xff_num_trusted_hops") {
		t.Errorf("list: %v", err)
	}
}

// A chain of merge keys that each merge the previous anchor ten times was a
// "merge bomb": every level multiplied the expansion by ten (12 levels:
// 10^12 pairs). Each source is expanded once per level now.
func TestMergeBombIsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("x0: &a0 {url: http://127.0.0.1:1/mcp}\n")
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
	}
	b.WriteString("mcp_servers: {s: {<<: *a12}}\n")
	f, err := Parse("config.yaml", []byte(b.String()), nil)
	if err != nil || len(f.Servers) != 1 || f.Servers[0].URL != "http://127.0.0.1:1/mcp" {
		t.Fatalf("merge chain: %v %+v", err, f)
	}
}

// Internal ranges written without loopback make every local caller external:
// the load says so (and serve and config check print it); with loopback, or
// with the default ranges, it says nothing.
func TestInternalRangesWithoutLoopbackWarn(t *testing.T) {
	for _, tc := range []struct {
		ranges string
		warns  bool
	}{
		{`["10.0.0.0/8"]`, true},
		{`["10.0.0.0/8", "127.0.0.0/8"]`, true}, // ::1 is a local caller too
		{`["10.0.0.0/8", "127.0.0.1/32", "::1/128"]`, false},
		{`[]`, false},
	} {
		f, err := Parse("c.yaml", []byte("general_settings:\n  mcp_internal_ip_ranges: "+tc.ranges+"\n"), mapEnv(nil))
		if err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(strings.Join(f.Warnings, "\n"), "general_settings.mcp_internal_ip_ranges: does not include")
		if warned != tc.warns {
			t.Errorf("ranges %s: warnings %q, want a loopback warning: %v", tc.ranges, f.Warnings, tc.warns)
		}
	}
}

func TestNATSReplicas(t *testing.T) {
	for src, want := range map[string]int{
		"": 0,
		"general_settings:\n  nats_replicas: 3\n":    3,
		"general_settings:\n  nats_replicas: auto\n": 0,
		"general_settings:\n  nats_replicas: 1\n":    1,
	} {
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil || f.NATSReplicas != want || len(f.Warnings) != 0 {
			t.Errorf("%q: got %v %v, want %d and no warning", src, f, err, want)
		}
	}
}

func TestRateLimitUnavailable(t *testing.T) {
	for src, want := range map[string]bool{
		"": false,
		"general_settings:\n  rate_limit_unavailable: refuse\n": false,
		"general_settings:\n  rate_limit_unavailable: allow\n":  true,
	} {
		f, err := Parse("config.yaml", []byte(src), nil)
		if err != nil || f.RateLimitFailOpen != want || len(f.Warnings) != 0 {
			t.Errorf("%q: got %v %v, want %v and no warning", src, f, err, want)
		}
	}
	if _, err := Parse("config.yaml", []byte("general_settings:\n  rate_limit_unavailable: maybe\n"), nil); err == nil ||
		!strings.Contains(err.Error(), "general_settings.rate_limit_unavailable: must be refuse") {
		t.Errorf("a bad value: %v", err)
	}
}

// general_settings.nats_* name files, written or as os.environ/ references;
// an empty one, or a reference to nothing, is an error naming the key.
func TestNATSJoinSettings(t *testing.T) {
	src := "general_settings:\n  nats_nkey: os.environ/SEED_FILE\n  nats_tls_ca: /etc/nats/ca.pem\n  nats_tls_cert: /etc/nats/c.pem\n  nats_tls_key: /etc/nats/k.pem\n"
	f, err := Parse("config.yaml", []byte(src), mapEnv(map[string]string{"SEED_FILE": "/run/secrets/seed"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (NATSJoin{NKey: "/run/secrets/seed", TLSCA: "/etc/nats/ca.pem", TLSCert: "/etc/nats/c.pem", TLSKey: "/etc/nats/k.pem"}); f.NATSJoin != want {
		t.Errorf("got %+v, want %+v", f.NATSJoin, want)
	}
	for src, want := range map[string]string{
		"general_settings:\n  nats_creds: \"\"\n":             "general_settings.nats_creds: is empty",
		"general_settings:\n  nats_tls_ca: os.environ/NOPE\n": "general_settings.nats_tls_ca: environment variable NOPE is not set",
	} {
		if _, err := Parse("config.yaml", []byte(src), mapEnv(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

// MCP 2026-07-28 is served unless the file turns it off.
func TestStatelessProtocolDefault(t *testing.T) {
	f, err := Parse("config.yaml", nil, nil)
	if err != nil || !f.StatelessProtocol {
		t.Fatalf("default: %v %v, want on", f.StatelessProtocol, err)
	}
	f, err = Parse("config.yaml", []byte("general_settings: {mcp_stateless_protocol: false}\n"), nil)
	if err != nil || f.StatelessProtocol {
		t.Fatalf("turned off: %v %v", f.StatelessProtocol, err)
	}
}
