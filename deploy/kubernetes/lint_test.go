package kubernetes

import (
	"os"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"sigs.k8s.io/yaml"
)

// `helm lint`, through the library, for every value set: no error and no
// warning, but the one a chart whose dependency is referenced, not
// vendored, always gets.
func TestHelmLint(t *testing.T) {
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			vals := map[string]any{}
			if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
				t.Fatal(err)
			}
			res := lint.RunAll(chartDir, vals, "mcp")
			for _, m := range res.Messages {
				if m.Severity == support.InfoSev {
					continue
				}
				if strings.Contains(m.Err.Error(), "chart directory is missing these dependencies: nats") {
					continue
				}
				t.Errorf("%s", m)
			}
		})
	}
}

// NATS comes from the official chart, referenced in Chart.yaml and never
// vendored, set up as a 3-node cluster with JetStream on disk that includes
// the bus users' block.
func TestNATSIsTheOfficialChart(t *testing.T) {
	c := loadChart(t)
	if c.Metadata.APIVersion != "v2" {
		t.Errorf("Chart.yaml apiVersion %q, want v2", c.Metadata.APIVersion)
	}
	var found bool
	for _, d := range c.Metadata.Dependencies {
		if d.Name != "nats" {
			continue
		}
		found = true
		if d.Repository != "https://nats-io.github.io/k8s/helm/charts/" || d.Version == "" || d.Condition != "nats.enabled" {
			t.Errorf("nats dependency %+v", d)
		}
	}
	if !found {
		t.Fatal("Chart.yaml has no nats dependency")
	}
	if len(c.Dependencies()) != 0 {
		t.Errorf("a dependency chart is vendored in %s/charts", chartDir)
	}
	raw, err := os.ReadFile(chartDir + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		NATS struct {
			Config struct {
				Cluster struct {
					Enabled  bool `json:"enabled"`
					Replicas int  `json:"replicas"`
				} `json:"cluster"`
				JetStream struct {
					Enabled   bool `json:"enabled"`
					FileStore struct {
						Enabled bool `json:"enabled"`
					} `json:"fileStore"`
				} `json:"jetstream"`
				Merge map[string]any `json:"merge"`
			} `json:"config"`
		} `json:"nats"`
	}
	if err := yaml.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	cfg := v.NATS.Config
	if !cfg.Cluster.Enabled || cfg.Cluster.Replicas != 3 || !cfg.JetStream.Enabled || !cfg.JetStream.FileStore.Enabled {
		t.Errorf("nats values: %+v, want a 3-node cluster with JetStream file storage", cfg)
	}
	if cfg.Merge["00$include"] != "mcpbus-users.conf" {
		t.Errorf("nats.config.merge does not include the bus users' block: %v", cfg.Merge)
	}
}
