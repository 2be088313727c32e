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
	Upstreams     int       `json:"upstreams"`
	ToolsEach     int       `json:"tools_each"`
	ListLatencyMs float64   `json:"injected_list_latency_ms"`
	Tools         int       `json:"tools_listed"`
	ColdSamplesMs []float64 `json:"cold_samples_ms"`
	ColdP50ms     float64   `json:"cold_p50_ms"`
	// RestartSamplesMs: the first list of the same gateway started again on
	// its data directory, after it had listed every server.
	RestartSamplesMs []float64 `json:"restart_samples_ms"`
	RestartP50ms     float64   `json:"restart_p50_ms"`
	CachedCalls      int       `json:"cached_calls"`
	CachedP50ms      float64   `json:"cached_p50_ms"`
	CachedP99ms      float64   `json:"cached_p99_ms"`
	DirectOneP50ms   float64   `json:"direct_one_upstream_p50_ms"`
}

const (
	catalogUpstreams = 10
	catalogTools     = 50 // per upstream: the demoTools demo tools + the rest generated
	demoTools        = 4  // echo, add, slow, ask
	catalogLatency   = 5 * time.Millisecond
)

// measureCatalog starts catalogUpstreams demo upstreams with catalogTools
// tools and catalogLatency on every list, puts a fresh mcpbus in front of all
// of them (aggregated on /mcp), and times the first tools/list (cold: every
// worker asks its upstream) and then repeated ones (cached in the workers).
func measureCatalog(ctx context.Context, o options, r *report, master, tmp string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "aggregated tools/list: %d upstreams x %d tools, %s list latency\n", catalogUpstreams, catalogTools, catalogLatency)
	c := &catalogRun{ctx: ctx, o: o, master: master, tmp: tmp, errs: errs,
		res: &catalogResult{Upstreams: catalogUpstreams, ToolsEach: catalogTools, ListLatencyMs: ms(catalogLatency)}}
	defer c.started.stop() // every process started here, on every return path
	first, cfgPath, err := c.startUpstreams()
	if err != nil {
		return err
	}
	last, err := c.coldLists(cfgPath)
	if err != nil {
		return err
	}
	n := 300
	if o.smoke {
		n = 50
	}
	cached, err := c.cachedLists(last, n)
	if err != nil {
		return err
	}
	one, err := c.directLists(first, min(n, 50))
	if err != nil {
		return err
	}
	if err := c.restartLists(cfgPath); err != nil {
		return err
	}
	res := c.res
	sort.Float64s(cached)
	res.CachedCalls = len(cached)
	res.ColdP50ms, res.CachedP50ms, res.CachedP99ms = median(res.ColdSamplesMs), median(cached), cached[len(cached)*99/100]
	res.DirectOneP50ms = median(one)
	res.RestartP50ms = median(res.RestartSamplesMs)
	r.Catalog = res
	fmt.Fprintf(os.Stderr, "catalog: cold %s ms, after a restart %s ms, cached p50 %.3f ms p99 %.3f ms (%d tools), direct one upstream p50 %.3f ms\n",
		floats(res.ColdSamplesMs, "%.1f"), floats(res.RestartSamplesMs, "%.1f"), res.CachedP50ms, res.CachedP99ms, res.Tools, res.DirectOneP50ms)
	return nil
}

// catalogRun is the state measureCatalog's steps share.
type catalogRun struct {
	ctx     context.Context
	o       options
	master  string
	tmp     string
	errs    *errorLog
	res     *catalogResult
	started stopper
	gw      *proc  // the gateway running now
	dataDir string // its data directory
}

// startUpstreams starts the catalogUpstreams upstreams and writes a config
// with all of them; it returns the first one's URL and the config's path.
func (c *catalogRun) startUpstreams() (first, cfgPath string, err error) {
	var servers strings.Builder
	for i := 1; i <= catalogUpstreams; i++ {
		p, err := startProc(fmt.Sprintf("catalog%02d", i), c.o.bin, []string{"demo-upstream", "--listen", "127.0.0.1:0",
			"--name", fmt.Sprintf("cat%02d", i), "--extra-tools", fmt.Sprint(catalogTools - demoTools), "--list-latency", catalogLatency.String()}, nil, c.tmp)
		if err != nil {
			return "", "", err
		}
		c.started.add(p)
		u, err := p.waitListening(15 * time.Second)
		if err != nil {
			return "", "", err
		}
		if first == "" {
			first = u
		}
		fmt.Fprintf(&servers, "  cat%02d:\n    url: %s\n", i, u)
	}
	cfgPath = filepath.Join(c.tmp, "catalog.yaml")
	cfg := "general_settings:\n  master_key: os.environ/MCPBUS_BENCH_MASTER_KEY\nmcp_servers:\n" + servers.String()
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", "", err
	}
	return first, cfgPath, nil
}

// list times one aggregated tools/list on s, an error unless it lists every
// upstream's every tool.
func (c *catalogRun) list(s *session) (time.Duration, error) {
	want := catalogUpstreams * catalogTools
	d, n, missing, err := s.listTools(c.ctx)
	if err == nil && (n != want || missing != 0) {
		err = fmt.Errorf("aggregated tools/list listed %d tools with %d servers missing, want %d tools", n, missing, want)
	}
	c.res.Tools = n
	return d, err
}

// coldLists starts max(-cold, 1) fresh gateways one after the other, times
// each one's first tools/list, and returns the session on the last, still
// running.
func (c *catalogRun) coldLists(cfgPath string) (*session, error) {
	var last *session
	for i := range max(c.o.cold, 1) {
		if c.gw != nil {
			c.gw.stop()
		}
		c.dataDir = filepath.Join(c.tmp, fmt.Sprintf("catalog%d-data", i))
		s, d, err := c.firstList(cfgPath, fmt.Sprintf("catalog-mcpbus%d", i), "catalog cold")
		if err != nil {
			return nil, err
		}
		c.res.ColdSamplesMs = append(c.res.ColdSamplesMs, ms(d))
		last = s
	}
	return last, nil
}

// restartLists stops the running gateway and starts it again on the same
// data directory, max(-cold, 1) times, timing each one's first tools/list:
// servers it has listed before (issue 22: at most 10 ms).
func (c *catalogRun) restartLists(cfgPath string) error {
	for i := range max(c.o.cold, 1) {
		c.gw.stop()
		_, d, err := c.firstList(cfgPath, fmt.Sprintf("catalog-restart%d", i), "catalog restart")
		if err != nil {
			return err
		}
		c.res.RestartSamplesMs = append(c.res.RestartSamplesMs, ms(d))
	}
	return nil
}

// firstList starts a gateway (name) on c.dataDir, as c.gw, opens a session
// on its aggregated /mcp once it listens, and times its first tools/list.
func (c *catalogRun) firstList(cfgPath, name, what string) (*session, time.Duration, error) {
	env := []string{"MCPBUS_BENCH_MASTER_KEY=" + c.master}
	if c.o.gomaxprocs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", c.o.gomaxprocs))
	}
	gw, err := startProc(name, c.o.bin, []string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0",
		"--data", c.dataDir, "--nats-listen", "off"}, env, c.tmp)
	if err != nil {
		return nil, 0, err
	}
	c.started.add(gw)
	c.gw = gw
	u, err := gw.waitListening(30 * time.Second)
	if err != nil {
		return nil, 0, err
	}
	s, err := newTarget("mcpbus", u+"/mcp", http.Header{"Authorization": {"Bearer " + c.master}}).initialize(c.ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: initialize on the aggregated /mcp: %w", what, err)
	}
	d, err := c.list(s)
	if err != nil {
		c.errs.add(what, err)
		return nil, 0, fmt.Errorf("%s list: %w", what, err)
	}
	return s, d, nil
}

// cachedLists times n tools/list on s after a few to fill the caches.
func (c *catalogRun) cachedLists(s *session, n int) ([]float64, error) {
	for range 5 { // settle: the first answers fill the caches
		if _, err := c.list(s); err != nil {
			return nil, fmt.Errorf("catalog warm-up list: %w", err)
		}
	}
	var cached []float64
	for range n {
		d, err := c.list(s)
		if err != nil {
			c.errs.add("catalog cached", err)
			return nil, fmt.Errorf("catalog cached list: %w", err)
		}
		cached = append(cached, ms(d))
	}
	return cached, nil
}

// directLists times n tools/list straight to the upstream at url.
func (c *catalogRun) directLists(url string, n int) ([]float64, error) {
	direct, err := newTarget("direct", url, nil).initialize(c.ctx)
	if err != nil {
		return nil, err
	}
	var one []float64
	for range n {
		d, _, _, err := direct.listTools(c.ctx)
		if err != nil {
			return nil, fmt.Errorf("direct list: %w", err)
		}
		one = append(one, ms(d))
	}
	return one, nil
}
