package compose

import (
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The observability profile: off by default; on, Prometheus scrapes every
// mcpbus process (every replica, through Docker's DNS) where it serves
// /metrics, and the collector takes OTLP/HTTP where .env.example says to send
// the spans.
func TestObservabilityProfile(t *testing.T) {
	extra := []string{"otel-collector", "prometheus"}
	for _, name := range extra {
		if _, err := loadProject(t).GetService(name); err == nil {
			t.Errorf("%s runs without --profile observability", name)
		}
	}
	p := loadProject(t, "observability")
	prom, err := p.GetService("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	var promCfg struct {
		ScrapeConfigs []struct {
			Job         string `yaml:"job_name"`
			MetricsPath string `yaml:"metrics_path"`
			DNS         []struct {
				Names []string `yaml:"names"`
				Type  string   `yaml:"type"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, hostPath(t, prom, "/etc/prometheus/prometheus.yml"), &promCfg)
	if !slices.Contains(prom.Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus runs %v, not with the mounted prometheus.yml", prom.Command)
	}
	scraped := map[string]bool{} // service:port
	for _, sc := range promCfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, d := range sc.DNS {
			for _, n := range d.Names {
				if d.Type == "A" {
					scraped[n+":"+strconv.Itoa(d.Port)] = true
				}
			}
		}
	}
	for _, s := range mcpbusServices(p) {
		c := parseCommand(t, s.Name, s.Command)
		if c.sub == "demo-upstream" {
			continue
		}
		_, port, _ := net.SplitHostPort(metricsAddr(c))
		if !scraped[s.Name+":"+port] {
			t.Errorf("prometheus.yml does not scrape service %s on port %s, where it serves /metrics", s.Name, port)
		}
		if _, ok := env(s)["OTEL_EXPORTER_OTLP_ENDPOINT"]; !ok {
			t.Errorf("service %s: no OTEL_EXPORTER_OTLP_ENDPOINT: its spans cannot reach the collector", s.Name)
		}
	}

	col, err := p.GetService("otel-collector")
	if err != nil {
		t.Fatal(err)
	}
	var colCfg struct {
		Receivers struct {
			OTLP struct {
				Protocols struct {
					HTTP struct {
						Endpoint string `yaml:"endpoint"`
					} `yaml:"http"`
				} `yaml:"protocols"`
			} `yaml:"otlp"`
		} `yaml:"receivers"`
		Service struct {
			Pipelines map[string]struct {
				Receivers []string `yaml:"receivers"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	readYAML(t, hostPath(t, col, col.Command[len(col.Command)-1]), &colCfg)
	_, colPort, _ := net.SplitHostPort(colCfg.Receivers.OTLP.Protocols.HTTP.Endpoint)
	if !slices.Contains(colCfg.Service.Pipelines["traces"].Receivers, "otlp") {
		t.Error("otel-collector.yaml: no traces pipeline from the otlp receiver")
	}
	// .env.example says what to set OTEL_EXPORTER_OTLP_ENDPOINT to.
	ex, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	want := "http://" + col.Name + ":" + colPort
	if colPort == "" || !strings.Contains(string(ex), want) {
		t.Errorf(".env.example does not point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP receiver (%s)", want)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
