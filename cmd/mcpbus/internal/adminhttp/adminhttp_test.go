package adminhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Metrics, liveliness and readiness of a process without the ingress:
// ready while its bus connection is up and JetStream answers, 503 naming
// the connection once it is gone.
func TestAdminListener(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	s, err := Start(Options{Addr: "127.0.0.1:0", Gatherer: reg, Conns: func() []*nats.Conn { return []*nats.Conn{nc} }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if code, body := get(t, s.URL()+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics: %d %.200s", code, body)
	}
	if code, body := get(t, s.URL()+"/health/liveliness"); code != 200 {
		t.Fatalf("liveliness: %d %s", code, body)
	}
	if code, body := get(t, s.URL()+"/health/readiness"); code != 200 || !strings.Contains(body, `"jetstream":"ok"`) {
		t.Fatalf("readiness: %d %s", code, body)
	}
	if code, body := get(t, s.URL()+"/nope"); code != 404 || !strings.Contains(body, "/health/readiness") {
		t.Fatalf("unknown path: %d %s", code, body)
	}
	nc.Close()
	if code, body := get(t, s.URL()+"/health/readiness"); code != 503 || !strings.Contains(body, `"nats `) || !strings.Contains(body, `"status":"unhealthy"`) {
		t.Fatalf("readiness without the bus: %d %s", code, body)
	}
}

// A connector is ready while its link to the hub is up: JetStream's API
// does not cross that link, so it is not asked.
func TestAdminListenerHub(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	var link error
	s, err := Start(Options{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry(), Conns: func() []*nats.Conn { return []*nats.Conn{nc} },
		Hub: func() error { return link }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if code, body := get(t, s.URL()+"/health/readiness"); code != 200 || !strings.Contains(body, `"hub":"ok"`) || strings.Contains(body, "jetstream") {
		t.Fatalf("readiness with the link up: %d %s", code, body)
	}
	link = errors.New("no link to the hub")
	if code, body := get(t, s.URL()+"/health/readiness"); code != 503 || !strings.Contains(body, `"hub":"no link to the hub"`) {
		t.Fatalf("readiness with the link down: %d %s", code, body)
	}
}
