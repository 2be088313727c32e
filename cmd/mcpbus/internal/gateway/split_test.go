package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The production shape: NATS alone, then auth+registry, router, workers and
// ingress each started on their own against it over loopback TCP, each as
// the bus user the config gives its roles (credentials from the
// environment). A call through the ingress crosses four services that share
// nothing but NATS.
func TestServicesSplitOverLoopbackNATS(t *testing.T) {
	upURL, rec := upstream(t, "split")
	yaml := `general_settings:
  master_key: sk-split-master
  mcp_bus_users:
    - {user: authreg, password: os.environ/PW, roles: [auth, registry]}
    - {user: router, password: os.environ/PW, roles: [router]}
    - {user: workers, password: os.environ/PW, roles: [workers]}
    - {user: ingress, password: os.environ/PW, roles: [ingress]}
mcp_servers:
  split:
    url: ` + upURL + "\n"
	const pw = "split-test-password-0123"
	cfg, err := config.Parse("config.yaml", []byte(yaml), func(k string) (string, bool) { return pw, k == "PW" })
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"auth": "authreg", "router": "router", "workers": "workers", "ingress": "ingress"}
	logs := &syncBuffer{}
	recordLogs(logs)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	start := func(services []string, natsURL, listen string) *Gateway {
		t.Helper()
		user := users[services[0]]
		env := func(k string) (string, bool) {
			switch k {
			case "MCPBUS_NATS_USER":
				return user, true
			case "MCPBUS_NATS_PASSWORD":
				return pw, true
			}
			return "", false
		}
		o := Options{Config: cfg, Listen: listen, DataDir: t.TempDir(), NATSURL: natsURL, Log: log, Services: services, Env: env}
		if natsURL == "" {
			o.NATSListen = freeAddr(t)
		}
		g, err := Start(context.Background(), o)
		if err != nil {
			t.Fatalf("start %v: %v", services, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g.Close(ctx)
		})
		return g
	}
	natsOnly := start([]string{"nats"}, "", "")
	natsURL := natsOnly.NATSURL()
	if natsURL == "" || natsOnly.URL() != "" {
		t.Fatalf("the nats-only process: NATS URL %q (want one), HTTP URL %q (want none)", natsURL, natsOnly.URL())
	}
	start([]string{"auth", "registry"}, natsURL, "")
	start([]string{"router"}, natsURL, "")
	start([]string{"workers"}, natsURL, "")
	ing := start([]string{"ingress"}, natsURL, "127.0.0.1:0")

	cs, err := connectPlain(t, ing.URL()+"/mcp", bearer("sk-split-master"))
	if err != nil {
		t.Fatalf("connect through the split deployment: %v\n%s", err, logs.String())
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "split__echo", Arguments: map[string]any{"text": "across processes"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "across processes" {
		t.Fatalf("echo through four services answered %+v", res.Content)
	}
	if rec.initCount() != 1 {
		t.Errorf("upstream saw %d initializes, want 1 (the worker keeps its session)", rec.initCount())
	}
}

func TestServicesOptionErrors(t *testing.T) {
	cfg, _ := config.Parse("config.yaml", []byte("mcp_servers: {}\n"), nil)
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Services: []string{"routr"}}, `unknown service "routr"`},
		{Options{Services: []string{"router"}}, "needs the NATS the others use"},
		{Options{Services: []string{"nats"}, NATSURL: "nats://127.0.0.1:1"}, "cannot be combined with --nats"},
	} {
		tc.o.Config, tc.o.Listen = cfg, "127.0.0.1:0"
		_, err := Start(context.Background(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%v) = %v, want an error containing %q", tc.o.Services, err, tc.want)
		}
	}
}
