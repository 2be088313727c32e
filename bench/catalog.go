package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// catalogResult is the aggregated tools/list across many slow upstreams.
type catalogResult struct {
	Upstreams      int       `json:"upstreams"`
	ToolsEach      int       `json:"tools_each"`
	ListLatencyMs  float64   `json:"injected_list_latency_ms"`
	Tools          int       `json:"tools_listed"`
	ColdSamplesMs  []float64 `json:"cold_samples_ms"`
	ColdP50ms      float64   `json:"cold_p50_ms"`
	CachedCalls    int       `json:"cached_calls"`
	CachedP50ms    float64   `json:"cached_p50_ms"`
	CachedP99ms    float64   `json:"cached_p99_ms"`
	DirectOneP50ms float64   `json:"direct_one_upstream_p50_ms"`
}

const (
	catalogUpstreams = 10
	catalogTools     = 50 // per upstream: the 3 demo tools + 47 generated
	catalogLatency   = 5 * time.Millisecond
)

// measureCatalog starts catalogUpstreams demo upstreams with catalogTools
// tools and catalogLatency on every list, puts a fresh mcpbus in front of all
// of them (aggregated on /mcp), and times the first tools/list (cold: every
// worker asks its upstream) and then repeated ones (cached in the workers).
func measureCatalog(ctx context.Context, o options, r *report, master, tmp string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "aggregated tools/list: %d upstreams x %d tools, %s list latency\n", catalogUpstreams, catalogTools, catalogLatency)
	var servers strings.Builder
	var first string
	for i := 1; i <= catalogUpstreams; i++ {
		p, err := startProc(fmt.Sprintf("catalog%02d", i), o.bin, []string{"demo-upstream", "--listen", "127.0.0.1:0",
			"--name", fmt.Sprintf("cat%02d", i), "--extra-tools", fmt.Sprint(catalogTools - 3), "--list-latency", catalogLatency.String()}, nil, tmp)
		if err != nil {
			return err
		}
		defer p.stop()
		u, err := p.waitListening(15 * time.Second)
		if err != nil {
			return err
		}
		if first == "" {
			first = u
		}
		fmt.Fprintf(&servers, "  cat%02d:\n    url: %s\n", i, u)
	}
	cfgPath := filepath.Join(tmp, "catalog.yaml")
	cfg := "general_settings:\n  master_key: os.environ/MCPBUS_BENCH_MASTER_KEY\nmcp_servers:\n" + servers.String()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	env := []string{"MCPBUS_BENCH_MASTER_KEY=" + master}
	if o.gomaxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs))
	}
	res := &catalogResult{Upstreams: catalogUpstreams, ToolsEach: catalogTools, ListLatencyMs: ms(catalogLatency)}
	want := catalogUpstreams * catalogTools
	list := func(s *session) (time.Duration, error) {
		d, n, missing, err := s.listTools(ctx)
		if err == nil && (n != want || missing != 0) {
			err = fmt.Errorf("aggregated tools/list listed %d tools with %d servers missing, want %d tools", n, missing, want)
		}
		res.Tools = n
		return d, err
	}
	auth := http.Header{"Authorization": {"Bearer " + master}}
	var last *session
	for i := range max(o.cold, 1) {
		gw, err := startProc(fmt.Sprintf("catalog-mcpbus%d", i), o.bin, []string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0",
			"--data", filepath.Join(tmp, fmt.Sprintf("catalog%d-data", i)), "--nats-listen", "off"}, env, tmp)
		if err != nil {
			return err
		}
		defer gw.stop()
		u, err := gw.waitListening(30 * time.Second)
		if err != nil {
			return err
		}
		s, err := newTarget("mcpbus", u+"/mcp", auth).initialize(ctx)
		if err != nil {
			return fmt.Errorf("catalog: initialize on the aggregated /mcp: %w", err)
		}
		d, err := list(s)
		if err != nil {
			errs.add("catalog cold", err)
			return fmt.Errorf("catalog cold list: %w", err)
		}
		res.ColdSamplesMs = append(res.ColdSamplesMs, ms(d))
		if i < max(o.cold, 1)-1 {
			gw.stop()
		}
		last = s
	}
	n := 300
	if o.smoke {
		n = 50
	}
	for range 5 { // settle: the first answers fill the caches
		if _, err := list(last); err != nil {
			return fmt.Errorf("catalog warm-up list: %w", err)
		}
	}
	var cached []float64
	for range n {
		d, err := list(last)
		if err != nil {
			errs.add("catalog cached", err)
			return fmt.Errorf("catalog cached list: %w", err)
		}
		cached = append(cached, ms(d))
	}
	direct, err := newTarget("direct", first, nil).initialize(ctx)
	if err != nil {
		return err
	}
	var one []float64
	for range min(n, 50) {
		d, _, _, err := direct.listTools(ctx)
		if err != nil {
			return fmt.Errorf("direct list: %w", err)
		}
		one = append(one, ms(d))
	}
	sort.Float64s(cached)
	res.CachedCalls = len(cached)
	res.ColdP50ms, res.CachedP50ms, res.CachedP99ms = median(res.ColdSamplesMs), median(cached), cached[len(cached)*99/100]
	res.DirectOneP50ms = median(one)
	r.Catalog = res
	fmt.Fprintf(os.Stderr, "catalog: cold %s ms, cached p50 %.3f ms p99 %.3f ms (%d tools), direct one upstream p50 %.3f ms\n",
		floats(res.ColdSamplesMs, "%.1f"), res.CachedP50ms, res.CachedP99ms, res.Tools, res.DirectOneP50ms)
	return nil
}
