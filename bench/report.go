package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
)

type report struct {
	Mode     string    `json:"mode"`
	Date     string    `json:"date"`
	Machine  machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Summary  []summary `json:"summary"` // medians across rounds, per concurrency
	// GoDefault is the same for a gateway with Go's default GOMAXPROCS, when
	// the measured one runs with Settings.MCPBusGOMAXPROCS.
	GoDefault []summary `json:"summary_go_default_gomaxprocs,omitempty"`
	// Stateless is the same for the measured gateway driven as an MCP
	// 2026-07-28 client (no session).
	Stateless []summary `json:"summary_stateless_2026,omitempty"`
	// Proxy is the same for a bare Go reverse proxy (proxy.go): one HTTP hop
	// and nothing else, the floor under any HTTP gateway on this machine.
	Proxy        []summary     `json:"summary_reverse_proxy,omitempty"`
	Targets      []targetRow   `json:"targets"`
	ColdStart    coldStart     `json:"cold_start"`
	Memory       memory        `json:"memory"`
	IdleSessions sessionMem    `json:"idle_sessions"`
	GoBenchmarks []goBenchmark `json:"go_benchmarks,omitempty"`
	Errors       struct {
		Total   int      `json:"total"`
		Samples []string `json:"samples,omitempty"`
	} `json:"errors"`
	NotMeasured []string       `json:"not_measured,omitempty"`
	Split       *splitResult   `json:"split,omitempty"`
	Catalog     *catalogResult `json:"aggregated_tools_list,omitempty"`
	Scaling     *scaleResult   `json:"worker_scaling,omitempty"`
	LLM         *llmResult     `json:"llm_chat_completions,omitempty"`
	// Features is each optional feature's cost (features.go).
	Features []featureSummary `json:"features,omitempty"`
	Phases   []phaseResult    `json:"phases"` // every timed phase, in order
}

type machine struct {
	NumCPU       int    `json:"nproc"`
	GoVersion    string `json:"go_version"`
	OS           string `json:"os"`
	Kernel       string `json:"kernel,omitempty"`
	CPUModel     string `json:"cpu_model,omitempty"`
	ClkTck       int    `json:"clk_tck"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
	GitCommit    string `json:"git_commit,omitempty"`
	GitDirty     bool   `json:"git_dirty"`
}

type settings struct {
	Rounds           int     `json:"rounds"`
	PhaseSeconds     float64 `json:"phase_seconds"`
	WarmupSeconds    float64 `json:"warmup_seconds"`
	High             int     `json:"high_concurrency"`
	IdleSessions     int     `json:"idle_sessions"`
	ColdStarts       int     `json:"cold_starts"`
	MCPBusGOMAXPROCS int     `json:"mcpbus_gomaxprocs,omitempty"`
	Upstream         string  `json:"upstream"` // the main rounds' upstream: go-sdk or minimal
	Binary           string  `json:"binary"`
}

// summary is one concurrency level: medians across rounds.
type summary struct {
	Concurrency int     `json:"concurrency"`
	Direct      stats   `json:"direct"`
	MCPBus      stats   `json:"mcpbus"`
	AddedP50ms  float64 `json:"added_p50_ms"`      // median over rounds of mcpbus p50 - direct p50
	AddedP99ms  float64 `json:"added_p99_ms"`      // same for p99
	Ratio       float64 `json:"calls_per_s_ratio"` // median over rounds of mcpbus / direct calls/s
	CPUusPC     float64 `json:"mcpbus_cpu_us_per_call"`
	CPUUserusPC float64 `json:"mcpbus_cpu_user_us_per_call"`
	CPUSysusPC  float64 `json:"mcpbus_cpu_sys_us_per_call"`
	AllocsPC    float64 `json:"mcpbus_allocs_per_call"` // process-wide, from /metrics (go_memstats_mallocs_total)
	PeakRSSMB   float64 `json:"mcpbus_rss_under_load_mb,omitempty"`
	UpCPUDirect float64 `json:"upstream_cpu_us_per_call_direct"`
	UpCPUVia    float64 `json:"upstream_cpu_us_per_call_via_mcpbus"`
	LoadgenCPU  float64 `json:"loadgen_cpu_us_per_call_via_mcpbus"`
}

type stats struct {
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CallsPerSec float64 `json:"calls_per_s"`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
}

type targetRow struct {
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Pass   bool    `json:"pass"`
}

type coldStart struct {
	SamplesMs       []float64 `json:"samples_ms"`
	MedianMs        float64   `json:"median_ms"`
	ListeningLineMs []float64 `json:"listening_line_ms"` // process start -> "mcpbus listening on" on stdout
}

type memory struct {
	// StartRSSMB: the gateway started, before any call; StartAnonMB is its
	// anonymous part (RssAnon: heap and stacks), the rest being the binary's
	// pages mapped from the page cache (RssFile).
	StartRSSMB          float64 `json:"mcpbus_start_rss_mb"`
	StartAnonMB         float64 `json:"mcpbus_start_rss_anon_mb"`
	IdleAnonMB          float64 `json:"mcpbus_idle_rss_anon_mb"`
	ProxyIdleRSSMB      float64 `json:"proxy_idle_rss_mb,omitempty"` // the bare proxy after warm-up
	IdleRSSMB           float64 `json:"mcpbus_idle_rss_mb"`          // after warm-up, before the rounds
	UnderLoadRSSMB      float64 `json:"mcpbus_rss_under_load_mb"`
	UpstreamIdleRSSMB   float64 `json:"upstream_idle_rss_mb"`
	IdleCPUPercent      float64 `json:"mcpbus_idle_cpu_percent"` // of one core, after warm-up, no load
	MetricsScrapeAllocs float64 `json:"metrics_scrape_allocs"`   // subtracted from each phase's allocation count
}

type sessionMem struct {
	Sessions              int     `json:"sessions"`
	RSSBeforeMB           float64 `json:"rss_before_mb"`
	RSSAfterMB            float64 `json:"rss_after_mb"`
	RSSPerSessionKB       float64 `json:"rss_per_session_kb"`
	HeapInuseBeforeMB     float64 `json:"heap_inuse_before_mb"`
	HeapInuseAfterMB      float64 `json:"heap_inuse_after_mb"`
	HeapInusePerSessionKB float64 `json:"heap_inuse_per_session_kb"`
	HeapAllocPerSessionKB float64 `json:"heap_alloc_per_session_kb"`
}

type goBenchmark struct {
	Name        string    `json:"name"`
	NsPerOp     float64   `json:"ns_per_op"` // median over -count runs
	AllocsPerOp float64   `json:"allocs_per_op"`
	BytesPerOp  float64   `json:"bytes_per_op"`
	Samples     []float64 `json:"ns_per_op_samples"`
}

func (r *report) summarize(high int) {
	for _, c := range []int{1, high} {
		s := r.summaryOf("mcpbus", c)
		if c == high {
			r.Memory.UnderLoadRSSMB = s.PeakRSSMB
		}
		r.Summary = append(r.Summary, s)
		if g := r.summaryOf(targetGoDefault, c); g.MCPBus.Calls > 0 {
			r.GoDefault = append(r.GoDefault, g)
		}
		if p := r.summaryOf(targetProxy, c); p.MCPBus.Calls > 0 {
			r.Proxy = append(r.Proxy, p)
		}
		if st := r.summaryOf(targetStateless, c); st.MCPBus.Calls > 0 {
			r.Stateless = append(r.Stateless, st)
		}
	}
	r.summarizeFeatures(high) // features.go
	lo, hi := r.Summary[0], r.Summary[len(r.Summary)-1]
	row := func(metric string, v float64, target string, pass bool) {
		r.Targets = append(r.Targets, targetRow{metric, v, target, pass})
	}
	// Issue 22's targets, relative to the bare proxy measured in the same
	// rounds (docs/plans/perf2.md).
	if len(r.Proxy) == 2 {
		plo, phi := r.Proxy[0], r.Proxy[1]
		row("added p50 at c=1, minus the bare proxy's (ms)", lo.AddedP50ms-plo.AddedP50ms, "<= 0.10", lo.AddedP50ms-plo.AddedP50ms <= 0.10)
		for _, x := range [][2]summary{{lo, plo}, {hi, phi}} {
			if x[1].CPUusPC > 0 {
				v := x[0].CPUusPC / x[1].CPUusPC
				row(fmt.Sprintf("CPU per tools/call at c=%d, mcpbus / bare proxy", x[0].Concurrency), v, "<= 1.30", v <= 1.30)
			}
		}
		if phi.Ratio > 0 {
			v := hi.Ratio / phi.Ratio
			row(fmt.Sprintf("calls/s at c=%d, mcpbus / bare proxy", high), v, ">= 0.90", v >= 0.90)
		}
	} else {
		r.NotMeasured = append(r.NotMeasured, "targets against the bare proxy: not run (-proxy=false)")
	}
	if len(r.Stateless) > 0 {
		// Issue 17: the stateless path is no slower than the session one;
		// 0.05 ms is the noise of two shared cores between two rows.
		d := r.Stateless[0].AddedP50ms - lo.AddedP50ms
		row("added p50 at c=1, 2026-07-28 minus 2025-11-25 client (ms)", d, "<= 0.05", d <= 0.05)
	}
	row("RSS started, before any call (MB)", r.Memory.StartRSSMB, "<= 20", r.Memory.StartRSSMB <= 20)
	row(fmt.Sprintf("RSS after load: the warm-up at c=%d, then idle (MB)", high), r.Memory.IdleRSSMB, "<= 35", r.Memory.IdleRSSMB <= 35)
	row(fmt.Sprintf("memory per idle session, RSS delta / %d (KB)", r.IdleSessions.Sessions), r.IdleSessions.RSSPerSessionKB, "<= 4", r.IdleSessions.RSSPerSessionKB <= 4)
	row("cold start to first tools/call (ms)", r.ColdStart.MedianMs, "<= 50", r.ColdStart.MedianMs <= 50)
	row("errors", float64(r.Errors.Total), "0", r.Errors.Total == 0)
	if c := r.Catalog; c != nil {
		row(fmt.Sprintf("cached aggregated tools/list p50, %d upstreams x %d tools (ms)", c.Upstreams, c.ToolsEach), c.CachedP50ms, "<= 0.5", c.CachedP50ms <= 0.5)
		row("first aggregated tools/list after a restart (ms)", c.RestartP50ms, "<= 10", c.RestartP50ms <= 10)
	} else {
		r.NotMeasured = append(r.NotMeasured, "aggregated tools/list: not run (-catalog=false)")
	}
	if s := r.Split; s != nil && len(s.Summary) > 0 {
		d := s.Summary[0].AddedP50ms - lo.AddedP50ms
		row("split processes: added p50 at c=1 minus all-in-one (ms)", d, "<= 0.15", d <= 0.15)
	}
	if r.Split == nil {
		r.NotMeasured = append(r.NotMeasured, "services as separate processes: not run (-split=false)")
	}
	if s := r.Scaling; s != nil {
		row("worker scaling: calls/s with 2 replicas / 1", s.Ratio2, ">= 1.80", s.Ratio2 >= 1.8)
	} else {
		r.NotMeasured = append(r.NotMeasured, "worker scaling: not run (-scale=false)")
	}
}

// summaryOf is one gateway target at concurrency c against direct, medians
// across rounds (round i of one against round i of the other).
func (r *report) summaryOf(name string, c int) summary {
	var d, m []phaseResult
	for _, p := range r.Phases {
		switch {
		case p.Concurrency != c:
		case p.Target == "direct":
			d = append(d, p)
		case p.Target == name:
			m = append(m, p)
		}
	}
	s := summary{Concurrency: c, Direct: statsOf(d), MCPBus: statsOf(m)}
	var added, added99, ratio, cpu, cpuU, cpuS, allocs, rss, upD, upV, lg []float64
	for i := range min(len(d), len(m)) {
		added = append(added, m[i].P50ms-d[i].P50ms)
		added99 = append(added99, m[i].P99ms-d[i].P99ms)
		if d[i].CallsPerSec > 0 {
			ratio = append(ratio, m[i].CallsPerSec/d[i].CallsPerSec)
		}
	}
	for _, p := range m {
		appendIf(&cpu, p.CPUusPerCall)
		appendIf(&cpuU, p.CPUUserusPC)
		appendIf(&cpuS, p.CPUSysusPC)
		appendIf(&lg, p.LoadgenCPUusPC)
		appendIf(&allocs, p.AllocsPerCall)
		appendIf(&rss, p.PeakRSSMB)
		appendIf(&upV, p.UpstreamCPUusPC)
	}
	for _, p := range d {
		appendIf(&upD, p.UpstreamCPUusPC)
	}
	s.AddedP50ms, s.AddedP99ms, s.Ratio = median(added), median(added99), median(ratio)
	s.CPUusPC, s.AllocsPC, s.PeakRSSMB = median(cpu), median(allocs), median(rss)
	s.UpCPUDirect, s.UpCPUVia = median(upD), median(upV)
	s.CPUUserusPC, s.CPUSysusPC, s.LoadgenCPU = median(cpuU), median(cpuS), median(lg)
	return s
}

func appendIf(dst *[]float64, v *float64) {
	if v != nil {
		*dst = append(*dst, *v)
	}
}

func statsOf(ps []phaseResult) stats {
	var p50, p99, cps []float64
	var s stats
	for _, p := range ps {
		p50, p99, cps = append(p50, p.P50ms), append(p99, p.P99ms), append(cps, p.CallsPerSec)
		s.Calls += p.Calls
		s.Errors += p.Errors
	}
	s.P50ms, s.P99ms, s.CallsPerSec = median(p50), median(p99), median(cps)
	return s
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nmcpbus bench (%s): %d CPUs, %s, %s, load %s -> %s, commit %s%s\n", r.Mode, r.Machine.NumCPU, r.Machine.GoVersion,
		r.Date, r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd, r.Machine.GitCommit, map[bool]string{true: " (dirty)"}[r.Machine.GitDirty])
	fmt.Fprintf(w, "%d round(s) of %.1fs phases, direct and via mcpbus interleaved; medians across rounds\n", r.Settings.Rounds, r.Settings.PhaseSeconds)
	if n := r.Settings.MCPBusGOMAXPROCS; n > 0 {
		fmt.Fprintf(w, "mcpbus runs with GOMAXPROCS=%d (the harness's default on 2 CPUs or fewer; -mcpbus-gomaxprocs 0 for Go's)\n", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tvalue\ttarget\tstatus")
	fmt.Fprintln(tw, "------\t-----\t------\t------")
	info := func(metric, value string) { fmt.Fprintf(tw, "%s\t%s\t-\t\n", metric, value) }
	for _, s := range r.Summary {
		info(fmt.Sprintf("c=%d p50 direct / mcpbus (ms)", s.Concurrency), fmt.Sprintf("%.3f / %.3f", s.Direct.P50ms, s.MCPBus.P50ms))
		info(fmt.Sprintf("c=%d p99 direct / mcpbus (ms)", s.Concurrency), fmt.Sprintf("%.3f / %.3f", s.Direct.P99ms, s.MCPBus.P99ms))
		info(fmt.Sprintf("c=%d calls/s direct / mcpbus", s.Concurrency), fmt.Sprintf("%.0f / %.0f", s.Direct.CallsPerSec, s.MCPBus.CallsPerSec))
		info(fmt.Sprintf("c=%d added p50 / p99 (ms)", s.Concurrency), fmt.Sprintf("%.3f / %.3f", s.AddedP50ms, s.AddedP99ms))
		info(fmt.Sprintf("c=%d mcpbus allocs per call (process, /metrics)", s.Concurrency), fmt.Sprintf("%.0f", s.AllocsPC))
		info(fmt.Sprintf("c=%d mcpbus CPU per call user / sys (us)", s.Concurrency), fmt.Sprintf("%.0f / %.0f", s.CPUUserusPC, s.CPUSysusPC))
		info(fmt.Sprintf("c=%d upstream CPU per call direct / via (us)", s.Concurrency), fmt.Sprintf("%.0f / %.0f", s.UpCPUDirect, s.UpCPUVia))
		info(fmt.Sprintf("c=%d load generator CPU per call via mcpbus (us)", s.Concurrency), fmt.Sprintf("%.0f", s.LoadgenCPU))
	}
	for _, s := range r.Stateless {
		info(fmt.Sprintf("c=%d MCP 2026-07-28 client (no session): added p50 ms, CPU us/call, ratio", s.Concurrency),
			fmt.Sprintf("%.3f, %.0f, %.2f", s.AddedP50ms, s.CPUusPC, s.Ratio))
	}
	for _, s := range r.Proxy {
		info(fmt.Sprintf("c=%d bare reverse proxy: added p50 ms, CPU us/call, ratio", s.Concurrency),
			fmt.Sprintf("%.3f, %.0f, %.2f", s.AddedP50ms, s.CPUusPC, s.Ratio))
	}
	for _, f := range r.Features {
		info(fmt.Sprintf("c=%d %s on: added p50 ms, p50 over plain ms, calls/s vs plain, CPU us/call over plain", f.Concurrency, f.Feature),
			fmt.Sprintf("%.3f, %+.3f, %.2f, %+.0f", f.AddedP50ms, f.CostP50ms, f.CallsRatio, f.CPUOverPC))
	}
	for _, s := range r.GoDefault {
		info(fmt.Sprintf("c=%d Go-default GOMAXPROCS: added p50 ms, CPU us/call, ratio", s.Concurrency),
			fmt.Sprintf("%.3f, %.0f, %.2f", s.AddedP50ms, s.CPUusPC, s.Ratio))
	}
	info("mcpbus RSS started / after load / under load (MB)", fmt.Sprintf("%.1f / %.1f / %.1f", r.Memory.StartRSSMB, r.Memory.IdleRSSMB, r.Memory.UnderLoadRSSMB))
	info("mcpbus RSS anonymous (heap, stacks) started / after load (MB)", fmt.Sprintf("%.1f / %.1f", r.Memory.StartAnonMB, r.Memory.IdleAnonMB))
	if r.Memory.ProxyIdleRSSMB > 0 {
		info("bare proxy RSS after load (MB)", fmt.Sprintf("%.1f", r.Memory.ProxyIdleRSSMB))
	}
	info("mcpbus CPU while idle (% of one core)", fmt.Sprintf("%.1f", r.Memory.IdleCPUPercent))
	info("idle sessions: Go heap in use per session (KB)", fmt.Sprintf("%.2f", r.IdleSessions.HeapInusePerSessionKB))
	info("cold start samples (ms)", floats(r.ColdStart.SamplesMs, "%.0f"))
	for _, g := range r.GoBenchmarks {
		info(g.Name+" (in-process)", fmt.Sprintf("%.0f ns/op, %.0f allocs/op, %.0f B/op", g.NsPerOp, g.AllocsPerOp, g.BytesPerOp))
	}
	if c := r.Catalog; c != nil {
		info(fmt.Sprintf("aggregated tools/list cold, %d x %d tools, %.0f ms injected (ms)", c.Upstreams, c.ToolsEach, c.ListLatencyMs), floats(c.ColdSamplesMs, "%.1f"))
		info("aggregated tools/list after a restart on the same data (ms)", floats(c.RestartSamplesMs, "%.1f"))
		info("aggregated tools/list cached p50 / p99 (ms)", fmt.Sprintf("%.3f / %.3f", c.CachedP50ms, c.CachedP99ms))
		info("one upstream's tools/list direct p50 (ms)", fmt.Sprintf("%.3f", c.DirectOneP50ms))
	}
	if s := r.Scaling; s != nil {
		info(fmt.Sprintf("worker scaling: %.0f ms upstream, %d slots/replica, c=%d: calls/s at 1 / 2 / 4 replicas", s.LatencyMs, s.Slots, s.Clients),
			fmt.Sprintf("%.0f / %.0f / %.0f", s.CallsPerS[1], s.CallsPerS[2], s.CallsPerS[4]))
		info("worker scaling: ratio to 1 replica at 2 / 4", fmt.Sprintf("%.2f / %.2f", s.Ratio2, s.Ratio4))
		info("worker scaling: what limits 4 replicas here", s.Bottleneck)
	}
	if l := r.LLM; l != nil {
		for _, x := range l.Rows {
			what := "JSON"
			if x.Mode == "stream" {
				what = "stream, first chunk"
			}
			info(fmt.Sprintf("LLM /v1/chat/completions %s c=%d p50 direct / mcpbus (ms)", what, x.Concurrency), fmt.Sprintf("%.3f / %.3f", x.DirectP50ms, x.MCPBusP50ms))
			info(fmt.Sprintf("LLM /v1/chat/completions %s c=%d added p50 (ms), calls/s ratio", what, x.Concurrency), fmt.Sprintf("%.3f, %.2f", x.AddedP50ms, x.Ratio))
		}
	}
	if s := r.Split; s != nil {
		for _, x := range s.Summary {
			info(fmt.Sprintf("split processes c=%d p50 direct / mcpbus (ms)", x.Concurrency), fmt.Sprintf("%.3f / %.3f", x.Direct.P50ms, x.MCPBus.P50ms))
			info(fmt.Sprintf("split processes c=%d added p50 (ms), calls/s ratio", x.Concurrency), fmt.Sprintf("%.3f, %.2f", x.AddedP50ms, x.Ratio))
		}
	}
	for _, n := range r.NotMeasured {
		metric, value, _ := strings.Cut(n, ": ")
		info(metric, value)
	}
	for _, t := range r.Targets {
		status := "MISS"
		if t.Pass {
			status = "PASS"
		}
		v := fmt.Sprintf("%.3f", t.Value)
		if t.Value >= 10 || t.Metric == "errors" {
			v = fmt.Sprintf("%.0f", t.Value)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Metric, v, t.Target, status)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nTargets are reported, not enforced (a shared 2-core machine is noisy); only errors fail the run.")
}

func floats(v []float64, f string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(s, ", ")
}

func (r *report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// The in-process Go benchmarks (cmd/mcpbus/internal/gateway/hotpath_bench_test.go),
// and two of issue 21's features that the load generator's echo calls do not
// cover: a task's create and result round trip (tasks_bench_test.go) and
// search_tools over 500 tools (toolsearch_bench_test.go).
const goBenchPattern = "^(BenchmarkToolsCallInProcess|BenchmarkDirectUpstreamInProcess|BenchmarkToolsCallInProcessParallel|BenchmarkRouterWorkerNATS|BenchmarkTaskCreateAndResult|BenchmarkToolSearchSearch500)$"

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// runGoBenchmarks runs go test -bench in cmd/mcpbus and parses its output.
func runGoBenchmarks(ctx context.Context, root string, count int, benchtime string) ([]goBenchmark, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", goBenchPattern, "-benchmem",
		"-count", strconv.Itoa(count), "-benchtime", benchtime, "./internal/gateway/")
	cmd.Dir = filepath.Join(root, "cmd", "mcpbus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench: %w\n%s", err, out)
	}
	byName := map[string]*goBenchmark{}
	var order []string
	allocs, bytes := map[string][]float64{}, map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name := m[1]
		g := byName[name]
		if g == nil {
			g = &goBenchmark{Name: name}
			byName[name] = g
			order = append(order, name)
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				g.Samples = append(g.Samples, v)
			case "allocs/op":
				allocs[name] = append(allocs[name], v)
			case "B/op":
				bytes[name] = append(bytes[name], v)
			}
		}
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("go test -bench printed no benchmark:\n%s", out)
	}
	var res []goBenchmark
	for _, n := range order {
		g := byName[n]
		g.NsPerOp, g.AllocsPerOp, g.BytesPerOp = median(g.Samples), median(allocs[n]), median(bytes[n])
		res = append(res, *g)
	}
	return res, nil
}
