// Command bench is mcpbus's benchmark harness (`make bench`; `make test` runs
// it once with -smoke). It starts the demo upstream and `mcpbus serve` as
// separate processes on loopback, drives both with an MCP-aware load generator
// (direct to the upstream and through mcpbus, interleaved, at concurrency 1
// and 64), measures cold start and memory per idle session, runs the in-process
// Go benchmarks of the hot path, and prints a table of every metric against
// its target. With -out it writes the numbers as JSON (bench/results/latest.json).
//
// Targets are reported, not enforced: the harness fails only on errors (a
// failed call, a process that does not start) or a broken harness.
// See docs/PERFORMANCE.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	smoke        bool
	bin          string
	out          string
	rounds       int
	duration     time.Duration
	warmup       time.Duration
	high         int
	sessions     int
	cold         int
	goBench      bool
	goBenchCount int
	goBenchTime  string
	gomaxprocs   int
	compareGo    bool
	keepLogs     bool
	split        bool
	scale        bool
	catalog      bool
	profileDir   string
	proxy        bool
	llm          bool
	features     bool
	proxyServe   string // -reverse-proxy: run as the baseline proxy
	upstream     string // go-sdk or minimal (minimal.go)
	minimalServe bool   // -minimal-upstream: run as the minimal upstream
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	flag.BoolVar(&o.smoke, "smoke", false, "short run for `make test`: 1 round of 200 ms phases, 100 idle sessions, 1 cold start, Go benchmarks once; writes no results unless -out is given")
	flag.StringVar(&o.bin, "bin", "", "mcpbus binary (default <repo>/bin/mcpbus, built if missing)")
	flag.StringVar(&o.out, "out", "", "write results as JSON here (default <repo>/bench/results/latest.json; none with -smoke)")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds of interleaved direct/mcpbus phases (at least 3 for a full run)")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each timed phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "warm-up per target before the rounds")
	flag.IntVar(&o.high, "c", 64, "the high concurrency (the low one is 1)")
	flag.IntVar(&o.sessions, "sessions", 1000, "idle sessions opened for the memory-per-session measurement")
	flag.IntVar(&o.cold, "cold", 3, "cold starts measured (the median is reported)")
	flag.BoolVar(&o.goBench, "gobench", true, "also run the in-process Go benchmarks (go test -bench) of cmd/mcpbus/internal/gateway")
	flag.IntVar(&o.goBenchCount, "gobench-count", 5, "go test -count for the Go benchmarks")
	flag.StringVar(&o.goBenchTime, "gobench-time", "1s", "go test -benchtime for the Go benchmarks")
	flag.IntVar(&o.gomaxprocs, "mcpbus-gomaxprocs", recommendedGOMAXPROCS(), "run mcpbus with GOMAXPROCS=N, 0 for Go's default (default: 1 on a machine of 2 CPUs or fewer, where mcpbus shares them with the upstream and the load generator; see docs/PERFORMANCE.md)")
	flag.BoolVar(&o.compareGo, "compare-go-default", true, "with -mcpbus-gomaxprocs set, also measure a gateway with Go's default GOMAXPROCS, interleaved in the same rounds")
	flag.BoolVar(&o.split, "split", true, "also measure the services as separate processes over loopback NATS")
	flag.BoolVar(&o.scale, "scale", true, "also measure 1, 2 and 4 worker processes serving a 50 ms upstream with max_concurrent_requests 8")
	flag.BoolVar(&o.catalog, "catalog", true, "also measure the aggregated tools/list across 10 slow upstreams")
	flag.BoolVar(&o.llm, "llm", true, "also measure /v1/chat/completions (JSON and time to first chunk) through mcpbus and direct to `mcpbus fake-llm`")
	flag.BoolVar(&o.features, "features", true, "also measure a gateway per optional feature of issue 21 (audit stream, tool pinning, guards, tool search, tasks) turned on, in the same rounds: what each costs a plain tools/call")
	flag.StringVar(&o.profileDir, "profile", "", "after the rounds, write CPU profiles of the gateway process at c=1 and the high concurrency (pprof) into this directory")
	flag.BoolVar(&o.proxy, "proxy", true, "also measure a bare Go reverse proxy (net/http/httputil) in front of the same upstream, interleaved in the same rounds: the cost of one HTTP hop")
	flag.StringVar(&o.proxyServe, "reverse-proxy", "", "internal: run as that baseline proxy in front of this upstream URL")
	flag.StringVar(&o.upstream, "upstream", "minimal", "the upstream of the main rounds: minimal (MCP as plain JSON with one tool, no SDK: the gateway's own cost shows, and issue 22's targets are judged on it; docs/plans/perf2.md) or go-sdk (mcpbus demo-upstream, ~650 us of CPU per call)")
	flag.BoolVar(&o.minimalServe, "minimal-upstream", false, "internal: run as the minimal upstream")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the temporary directory with the processes' stderr logs")
	flag.Parse()
	if o.minimalServe {
		if err := serveMinimalUpstream(); err != nil {
			fmt.Fprintln(os.Stderr, "minimal upstream:", err)
			return 1
		}
		return 0
	}
	if o.upstream != "go-sdk" && o.upstream != "minimal" {
		fmt.Fprintf(os.Stderr, "bench: -upstream %q: want go-sdk or minimal\n", o.upstream)
		return 2
	}
	if o.proxyServe != "" {
		if err := serveReverseProxy(o.proxyServe); err != nil {
			fmt.Fprintln(os.Stderr, "reverse proxy:", err)
			return 1
		}
		return 0
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.smoke {
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.rounds = 1 })
		def("duration", func() { o.duration = 200 * time.Millisecond })
		def("warmup", func() { o.warmup = 100 * time.Millisecond })
		def("sessions", func() { o.sessions = 100 })
		def("cold", func() { o.cold = 1 })
		def("gobench-count", func() { o.goBenchCount = 1 })
		def("gobench-time", func() { o.goBenchTime = "1x" })
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer stopAll() // every child, on every exit path

	if err := bench(ctx, o, set); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// gateway is a gateway process and its base URL.
type gateway struct {
	p   *proc
	url string
}

// targetGoDefault names the gateway run with Go's default GOMAXPROCS.
const targetGoDefault = "mcpbus-go-default"

// targetStateless names the measured gateway driven as an MCP 2026-07-28
// client: no session, _meta on every call.
const targetStateless = "mcpbus-2026"

// targetProxy names the bare reverse proxy (proxy.go).
const targetProxy = "reverse-proxy"

// recommendedGOMAXPROCS is 1 on a machine of 2 CPUs or fewer: there the
// gateway shares the cores with the upstream and the load generator, and a
// second P mostly spins and wakes threads (docs/PERFORMANCE.md); elsewhere
// 0, Go's default.
func recommendedGOMAXPROCS() int {
	if runtime.NumCPU() <= 2 {
		return 1
	}
	return 0
}

// measuredPhase runs one phase and, around its timed part, reads the
// processes' CPU (and for mcpbus: allocations from /metrics and, at high
// concurrency, RSS sampled every 50 ms).
func measuredPhase(ctx context.Context, t *target, c int, d time.Duration, errs *errorLog, label string, gw, up *proc, gwURL string, clk int, scrapeCost float64, isGW bool) phaseResult {
	var gwU0, gwS0, upT0, selfT0 int64
	var mallocs0 float64
	var peak int64
	var sampler sync.WaitGroup
	stopSampler := make(chan struct{})
	var res phaseResult
	hooks := phaseHooks{
		before: func() {
			if isGW {
				if m, err := scrapeMetrics(gwURL, "go_memstats_mallocs_total"); err == nil {
					mallocs0 = m["go_memstats_mallocs_total"]
				}
				gwU0, gwS0, _ = cpuTimes(gw.pid())
				if c > 1 {
					sampler.Go(func() {
						tk := time.NewTicker(50 * time.Millisecond)
						defer tk.Stop()
						for {
							if kb, err := rssKB(gw.pid()); err == nil && kb > peak {
								peak = kb
							}
							select {
							case <-stopSampler:
								return
							case <-tk.C:
							}
						}
					})
				}
			}
			upT0, _ = cpuTicks(up.pid())
			selfT0, _ = cpuTicks(os.Getpid())
		},
		after: func(calls int) {
			selfT1, _ := cpuTicks(os.Getpid())
			upT1, _ := cpuTicks(up.pid())
			perCall := func(ticks int64) *float64 {
				v := float64(ticks) / float64(clk) * 1e6 / float64(calls)
				return &v
			}
			if calls > 0 {
				res.UpstreamCPUusPC = perCall(upT1 - upT0)
				res.LoadgenCPUusPC = perCall(selfT1 - selfT0)
			}
			if !isGW {
				return
			}
			gwU1, gwS1, _ := cpuTimes(gw.pid())
			close(stopSampler)
			sampler.Wait()
			if c > 1 {
				v := float64(peak) / 1024
				res.PeakRSSMB = &v
			}
			if calls > 0 {
				res.CPUusPerCall = perCall(gwU1 + gwS1 - gwU0 - gwS0)
				res.CPUUserusPC, res.CPUSysusPC = perCall(gwU1-gwU0), perCall(gwS1-gwS0)
				if m, err := scrapeMetrics(gwURL, "go_memstats_mallocs_total"); err == nil && mallocs0 > 0 {
					a := (m["go_memstats_mallocs_total"] - mallocs0 - scrapeCost) / float64(calls)
					res.AllocsPerCall = &a
				}
			}
		},
	}
	out := runPhase(ctx, t, c, d, errs, label, hooks)
	out.CPUusPerCall, out.CPUUserusPC, out.CPUSysusPC, out.AllocsPerCall = res.CPUusPerCall, res.CPUUserusPC, res.CPUSysusPC, res.AllocsPerCall
	out.PeakRSSMB, out.UpstreamCPUusPC, out.LoadgenCPUusPC = res.PeakRSSMB, res.UpstreamCPUusPC, res.LoadgenCPUusPC
	return out
}

// calibrateScrape is the allocations of one /metrics scrape, subtracted from
// the per-phase difference of go_memstats_mallocs_total (median of 5).
func calibrateScrape(gwURL string) (float64, error) {
	var d []float64
	prev, err := scrapeMetrics(gwURL, "go_memstats_mallocs_total")
	if err != nil {
		return 0, err
	}
	for range 5 {
		m, err := scrapeMetrics(gwURL, "go_memstats_mallocs_total")
		if err != nil {
			return 0, err
		}
		d = append(d, m["go_memstats_mallocs_total"]-prev["go_memstats_mallocs_total"])
		prev = m
	}
	return median(d), nil
}

// idleSessions measures memory per idle session on a fresh mcpbus: warm it
// with one session's calls, read RSS (and the Go heap from /metrics), open n
// sessions (initialize + notifications/initialized each; nothing else), read again.
func idleSessions(ctx context.Context, r *report, p *proc, base string, t *target, n int, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "memory per idle session: %d sessions\n", n)
	s, err := t.initialize(ctx)
	if err != nil {
		return err
	}
	for range 200 {
		if err := s.call(ctx); err != nil {
			errs.add("idle sessions warm-up", err)
		}
	}
	metrics := []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes"}
	time.Sleep(500 * time.Millisecond)
	rss0, err := rssKB(p.pid())
	if err != nil {
		return err
	}
	m0, err := scrapeMetrics(base, metrics...)
	if err != nil {
		return err
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := t.initialize(ctx); err != nil {
				errs.add("idle sessions", err)
			}
		})
	}
	wg.Wait()
	time.Sleep(time.Second)
	rss1, err := rssKB(p.pid())
	if err != nil {
		return err
	}
	m1, err := scrapeMetrics(base, metrics...)
	if err != nil {
		return err
	}
	is := &r.IdleSessions
	is.Sessions = n
	is.RSSBeforeMB, is.RSSAfterMB = float64(rss0)/1024, float64(rss1)/1024
	is.RSSPerSessionKB = float64(rss1-rss0) / float64(n)
	is.HeapInuseBeforeMB, is.HeapInuseAfterMB = m0["go_memstats_heap_inuse_bytes"]/(1<<20), m1["go_memstats_heap_inuse_bytes"]/(1<<20)
	is.HeapInusePerSessionKB = (m1["go_memstats_heap_inuse_bytes"] - m0["go_memstats_heap_inuse_bytes"]) / 1024 / float64(n)
	is.HeapAllocPerSessionKB = (m1["go_memstats_heap_alloc_bytes"] - m0["go_memstats_heap_alloc_bytes"]) / 1024 / float64(n)
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("run inside the mcpbus repository (no go.work above " + dir + ")")
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func machineInfo(root string) machine {
	m := machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, LoadAvgStart: loadAvg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil {
		m.GitDirty = len(strings.TrimSpace(string(out))) > 0
	}
	return m
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}
