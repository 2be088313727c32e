package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// benchRun is one run of the harness: the state its steps share. bench
// makes it, and execute runs the steps in order, stopping at the first error.
type benchRun struct {
	ctx  context.Context
	o    options
	root string
	tmp  string // the processes' logs and data directories
	r    *report
	errs *errorLog
	clk  int // clock ticks per second, for /proc CPU times

	// The fast upstream and the config of every gateway in front of it.
	up               *proc
	upURL, upToken   string
	master           string
	cfgPath          string
	env, baseEnv     []string // baseEnv: without the GOMAXPROCS of -mcpbus-gomaxprocs
	direct           *target
	viaAuth          http.Header
	gw               *proc // the gateway measured under load
	gwURL, debugAddr string
	via              *target
	targets          []*target // measured in this order in every round
	gateways         map[*target]gateway
	scrapeCost       float64 // allocations of one /metrics scrape

	started stopper // every process started by a step, stopped when bench returns
}

// bench runs the harness. Every process it starts is stopped on every return
// path; the temporary directory with their logs is kept on a failure (or
// with -keep-logs), else removed once every child has stopped.
func bench(ctx context.Context, o options, set map[string]bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.bin == "" {
		o.bin = filepath.Join(root, "bin", "mcpbus")
	}
	if !o.smoke && !set["out"] {
		o.out = filepath.Join(root, "bench", "results", "latest.json")
	}
	if err := buildIfMissing(root, o.bin); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcpbus-bench-")
	if err != nil {
		return err
	}
	failed := true
	defer func() {
		if failed || o.keepLogs {
			fmt.Fprintf(os.Stderr, "bench: process logs kept in %s\n", tmp)
			return
		}
		stopAll() // before removing their data directories
		os.RemoveAll(tmp)
	}()
	b := newBenchRun(ctx, o, root, tmp)
	defer b.started.stop() // before the function above, like one defer per process
	if err := b.execute(); err != nil {
		return err
	}
	failed = false
	return nil
}

// buildIfMissing builds bin from cmd/mcpbus unless it exists.
func buildIfMissing(root, bin string) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	fmt.Fprintf(os.Stderr, "building %s\n", bin)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "cmd", "mcpbus")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}
	return nil
}

func newBenchRun(ctx context.Context, o options, root, tmp string) *benchRun {
	r := &report{Mode: "full", Date: time.Now().UTC().Format(time.RFC3339), Machine: machineInfo(root)}
	if o.smoke {
		r.Mode = "smoke"
	}
	r.Settings = settings{Rounds: o.rounds, PhaseSeconds: o.duration.Seconds(), WarmupSeconds: o.warmup.Seconds(), High: o.high,
		IdleSessions: o.sessions, ColdStarts: o.cold, MCPBusGOMAXPROCS: o.gomaxprocs, Binary: o.bin, Upstream: o.upstream}
	b := &benchRun{ctx: ctx, o: o, root: root, tmp: tmp, r: r, errs: &errorLog{}, clk: clockTicks()}
	r.Machine.ClkTck = b.clk
	return b
}

// execute runs the steps in order; the report is printed (and written) only
// when every step succeeded.
func (b *benchRun) execute() error {
	steps := []func() error{
		b.setUp,
		b.coldStart,            // 1.
		b.startGateways,        // 2.
		b.startFeatureGateways, // 2. features.go
		b.warmUp,               // 2.
		b.idleBaseline,         // 2.
		b.interleavedRounds,    // 3.
		b.splitPhase,           // 4.
		b.catalogPhase,         // 5.
		b.scalePhase,           // 6.
		b.llmPhase,             // 6b.
		b.goBenchPhase,         // 7.
		b.finishReport,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// benchConfig is the gateways' config; %s is the upstream's URL.
const benchConfig = `general_settings:
  master_key: os.environ/MCPBUS_BENCH_MASTER_KEY
  # The split deployment's processes join the bus as this user.
  mcp_stateless_protocol: true
  mcp_bus_users:
    - {user: bench-split, password: os.environ/MCPBUS_BENCH_BUS_PASSWORD, roles: [auth, registry, router, workers, ingress]}
mcp_servers:
  demo:
    url: %s
    auth_type: bearer_token
    auth_value: os.environ/MCPBUS_BENCH_UPSTREAM_TOKEN
`

// setUp starts the fast upstream: the demo MCP server (go-sdk, Streamable
// HTTP), behind a credential; and writes the gateways' config and environment.
func (b *benchRun) setUp() error {
	b.upToken, b.master = randHex(16), "sk-bench-"+randHex(12)
	var up *proc
	var upURL string
	var err error
	if b.o.upstream == "minimal" {
		up, upURL, err = startMinimalUpstream("Bearer "+b.upToken, b.tmp) // minimal.go
	} else {
		up, upURL, err = startUpstream(b.o.bin, b.tmp, "upstream", "--name", "bench", "--require-header", "Authorization: Bearer "+b.upToken)
	}
	if err != nil {
		return err
	}
	b.started.add(up)
	b.up, b.upURL = up, upURL
	b.cfgPath = filepath.Join(b.tmp, "config.yaml")
	if err := os.WriteFile(b.cfgPath, []byte(fmt.Sprintf(benchConfig, upURL)), 0o600); err != nil {
		return err
	}
	b.env = []string{"MCPBUS_BENCH_MASTER_KEY=" + b.master, "MCPBUS_BENCH_UPSTREAM_TOKEN=" + b.upToken, "MCPBUS_BENCH_BUS_PASSWORD=" + busPassword}
	b.baseEnv = slices.Clone(b.env)
	if b.o.gomaxprocs > 0 {
		b.env = append(b.env, fmt.Sprintf("GOMAXPROCS=%d", b.o.gomaxprocs))
	}
	b.direct = newTarget("direct", upURL, http.Header{"Authorization": {"Bearer " + b.upToken}})
	b.viaAuth = http.Header{"Authorization": {"Bearer " + b.master}}
	return nil
}

// startServe starts `mcpbus serve` named name on listen (and debug, if set)
// with a data directory of its own.
func (b *benchRun) startServe(name, listen, debug string, env []string) (*proc, error) {
	args := []string{"serve", "--config", b.cfgPath, "--listen", listen, "--data", filepath.Join(b.tmp, name+"-data"), "--nats-listen", "off"}
	if debug != "" {
		args = append(args, "--debug-listen", debug)
	}
	return startProc(name, b.o.bin, args, env, b.tmp)
}

// coldStart is step 1. Cold start: process start -> first successful
// tools/call (fresh data dir each time). The last process, fresh, then
// measures idle sessions.
func (b *benchRun) coldStart() error {
	o, r := b.o, b.r
	fmt.Fprintf(os.Stderr, "cold start x%d\n", o.cold)
	for i := range o.cold {
		addr, err := freePort()
		if err != nil {
			return err
		}
		p, err := b.startServe(fmt.Sprintf("cold%d", i), addr, "", b.env)
		if err != nil {
			return err
		}
		t := newTarget("mcpbus", "http://"+addr+"/mcp/demo", b.viaAuth)
		cctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err = firstCall(cctx, t, 2*time.Millisecond)
		cancel()
		d := time.Since(p.started)
		if err != nil {
			b.errs.add("cold start", err)
			p.stop()
			return fmt.Errorf("cold start: %w\n%s", err, tail(p.stderr, 2000))
		}
		r.ColdStart.SamplesMs = append(r.ColdStart.SamplesMs, ms(d))
		if _, err := p.waitListening(5 * time.Second); err == nil {
			r.ColdStart.ListeningLineMs = append(r.ColdStart.ListeningLineMs, ms(p.listenAt.Sub(p.started)))
		}
		if i == o.cold-1 {
			if err := idleSessions(b.ctx, r, p, "http://"+addr, t, o.sessions, b.errs); err != nil {
				p.stop()
				return err
			}
		}
		p.stop()
	}
	r.ColdStart.MedianMs = median(r.ColdStart.SamplesMs)
	return nil
}

// startGateways starts step 2: the mcpbus under load, in front of the same
// upstream, and the targets measured next to it in the rounds.
func (b *benchRun) startGateways() error {
	if b.o.profileDir != "" {
		addr, err := freePort()
		if err != nil {
			return err
		}
		b.debugAddr = addr
	}
	gw, err := b.startServe("mcpbus", "127.0.0.1:0", b.debugAddr, b.env)
	if err != nil {
		return err
	}
	b.started.add(gw)
	b.gw = gw
	if b.gwURL, err = gw.waitListening(30 * time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // its start-up garbage settles
	mb := func(field string) float64 { kb, _ := statusKB(gw.pid(), field); return float64(kb) / 1024 }
	b.r.Memory.StartRSSMB, b.r.Memory.StartAnonMB = mb("VmRSS"), mb("RssAnon")
	b.via = newTarget("mcpbus", b.gwURL+"/mcp/demo", b.viaAuth)
	b.targets = []*target{b.direct, b.via}
	b.gateways = map[*target]gateway{b.direct: {gw, b.gwURL}, b.via: {gw, b.gwURL}}
	// The same gateway and upstream, driven as a 2026-07-28 client.
	stateless := newTarget(targetStateless, b.gwURL+"/mcp/demo", b.viaAuth)
	stateless.stateless = true
	b.addTarget(stateless, gateway{gw, b.gwURL})
	if b.o.gomaxprocs > 0 && b.o.compareGo {
		// The same gateway with Go's default GOMAXPROCS (no GOMAXPROCS in its
		// environment), idle while the others are measured.
		dgw, err := b.startServe(targetGoDefault, "127.0.0.1:0", "", b.baseEnv)
		if err != nil {
			return err
		}
		b.started.add(dgw)
		dURL, err := dgw.waitListening(30 * time.Second)
		if err != nil {
			return err
		}
		b.addTarget(newTarget(targetGoDefault, dURL+"/mcp/demo", b.viaAuth), gateway{dgw, dURL})
	}
	if b.o.proxy {
		pp, pURL, err := startReverseProxy(b.upURL, "Bearer "+b.upToken, b.env, b.tmp)
		if err != nil {
			return fmt.Errorf("reverse proxy: %w", err)
		}
		b.started.add(pp)
		b.addTarget(newTarget(targetProxy, pURL, nil), gateway{pp, ""})
	}
	return nil
}

func (b *benchRun) addTarget(t *target, g gateway) {
	b.targets = append(b.targets, t)
	b.gateways[t] = g
}

// warmUp warms every target up at the high concurrency (step 2).
func (b *benchRun) warmUp() error {
	fmt.Fprintf(os.Stderr, "warm-up %s per target\n", b.o.warmup)
	for _, t := range b.targets {
		res := runPhase(b.ctx, t, b.o.high, b.o.warmup, b.errs, "warm-up "+t.name, phaseHooks{})
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		if res.Calls == 0 {
			return fmt.Errorf("warm-up %s: no successful call: %v", t.name, b.errs.samples)
		}
	}
	return nil
}

// idleBaseline measures, after the warm-up (step 2), the idle RSS of the
// gateway and the upstream, the gateway's idle CPU and the allocations of a
// /metrics scrape.
func (b *benchRun) idleBaseline() error {
	r := b.r
	time.Sleep(500 * time.Millisecond)
	if kb, err := rssKB(b.gw.pid()); err == nil {
		r.Memory.IdleRSSMB = float64(kb) / 1024
	}
	if kb, err := statusKB(b.gw.pid(), "RssAnon"); err == nil {
		r.Memory.IdleAnonMB = float64(kb) / 1024
	}
	if kb, err := rssKB(b.up.pid()); err == nil {
		r.Memory.UpstreamIdleRSSMB = float64(kb) / 1024
	}
	for t, g := range b.gateways {
		if t.name == targetProxy {
			if kb, err := rssKB(g.p.pid()); err == nil {
				r.Memory.ProxyIdleRSSMB = float64(kb) / 1024
			}
		}
	}
	// Background CPU of an idle mcpbus (timers, JetStream, session sweep): it
	// is part of every phase's CPU, so it is reported next to the per-call cost.
	idleFor := 2 * time.Second
	if b.o.smoke {
		idleFor = 500 * time.Millisecond
	}
	if t0, err := cpuTicks(b.gw.pid()); err == nil {
		time.Sleep(idleFor)
		if t1, err := cpuTicks(b.gw.pid()); err == nil {
			r.Memory.IdleCPUPercent = float64(t1-t0) / float64(b.clk) / idleFor.Seconds() * 100
		}
	}
	scrapeCost, err := calibrateScrape(b.gwURL)
	if err != nil {
		return fmt.Errorf("allocations via /metrics: %w", err)
	}
	b.scrapeCost = scrapeCost
	r.Memory.MetricsScrapeAllocs = scrapeCost
	return nil
}

// interleavedRounds is step 3. Interleaved rounds: at each concurrency,
// direct then mcpbus (A B A B ...); then the optional CPU profiles, and the
// gateway stops.
func (b *benchRun) interleavedRounds() error {
	o := b.o
	if o.gomaxprocs > 0 {
		fmt.Fprintf(os.Stderr, "mcpbus (and the reverse proxy) run with GOMAXPROCS=%d\n", o.gomaxprocs)
	}
	for round := 1; round <= o.rounds; round++ {
		for _, c := range []int{1, o.high} {
			for _, t := range b.targets {
				if b.ctx.Err() != nil {
					return b.ctx.Err()
				}
				label := fmt.Sprintf("round %d c=%d %s", round, c, t.name)
				g := b.gateways[t]
				res := measuredPhase(b.ctx, t, c, o.duration, b.errs, label, g.p, b.up, g.url, b.clk, b.scrapeCost, t != b.direct)
				res.Round = round
				fmt.Fprintf(os.Stderr, "%-26s %7d calls  p50 %6.3f ms  p99 %6.3f ms  %8.0f calls/s  errors %d\n", label, res.Calls, res.P50ms, res.P99ms, res.CallsPerSec, res.Errors)
				if res.Calls == 0 {
					return fmt.Errorf("%s: no successful call: %v", label, b.errs.samples)
				}
				b.r.Phases = append(b.r.Phases, res)
			}
		}
	}
	if o.profileDir != "" {
		if err := profilePhases(b.ctx, o.profileDir, b.debugAddr, b.via, []int{1, o.high}, max(o.duration, 2*time.Second), b.errs); err != nil {
			return err
		}
	}
	b.gw.stop()
	return nil
}

// splitPhase is step 4. The same path with every service in its own
// process; then the upstream stops.
func (b *benchRun) splitPhase() error {
	if b.o.split {
		if err := measureSplit(b.ctx, b.o, b.r, b.direct, b.viaAuth, b.cfgPath, b.tmp, b.env, b.errs); err != nil {
			return err
		}
	}
	b.up.stop()
	return nil
}

// catalogPhase is step 5. Aggregated tools/list across 10 slow upstreams,
// cold and cached.
func (b *benchRun) catalogPhase() error {
	if !b.o.catalog {
		return nil
	}
	return measureCatalog(b.ctx, b.o, b.r, b.master, b.tmp, b.errs)
}

// scalePhase is step 6. Worker replicas: 1, 2 and 4 processes serving one
// slow upstream.
func (b *benchRun) scalePhase() error {
	if !b.o.scale {
		return nil
	}
	return measureScaling(b.ctx, b.o, b.r, b.master, b.tmp, b.errs)
}

// llmPhase is step 6b. The LLM routes: chat completions through mcpbus
// and direct to the fake provider.
func (b *benchRun) llmPhase() error {
	if !b.o.llm {
		return nil
	}
	return measureLLM(b.ctx, b.o, b.r, b.master, b.tmp, b.errs)
}

// goBenchPhase is step 7. The in-process hot path (testing.B), with nothing
// else of ours running.
func (b *benchRun) goBenchPhase() error {
	if !b.o.goBench {
		return nil
	}
	fmt.Fprintf(os.Stderr, "go test -bench (count %d, benchtime %s)\n", b.o.goBenchCount, b.o.goBenchTime)
	gb, err := runGoBenchmarks(b.ctx, b.root, b.o.goBenchCount, b.o.goBenchTime)
	if err != nil {
		return err
	}
	b.r.GoBenchmarks = gb
	return nil
}

// finishReport prints the report (and writes it with -out); any error
// logged during the run fails it, after the report.
func (b *benchRun) finishReport() error {
	r, errs := b.r, b.errs
	r.Errors.Total = errs.count()
	r.Errors.Samples = errs.samples
	r.Machine.LoadAvgEnd = loadAvg()
	r.summarize(b.o.high)
	r.print(os.Stdout)
	if b.o.out != "" {
		if err := r.write(b.o.out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", b.o.out)
	}
	if r.Errors.Total > 0 {
		return fmt.Errorf("%d errors: %s", r.Errors.Total, strings.Join(errs.samples, "; "))
	}
	return nil
}
