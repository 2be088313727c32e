package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// splitResult is the tools/call path with every service in its own process,
// meeting over loopback TCP NATS (the production shape), against direct.
type splitResult struct {
	Processes  []string      `json:"processes"`
	Phases     []phaseResult `json:"phases"`
	Summary    []summary     `json:"summary"`
	AddedP50ms float64       `json:"added_p50_ms_c1"`
	Ratio      float64       `json:"calls_per_s_ratio_high"`
}

// busPassword is the password of the bench's bus user (the config's
// mcp_bus_users), for the split deployment's processes; new at every run.
var busPassword = randHex(16)

// splitDeployment starts NATS alone, then auth+registry, router, workers and
// the ingress as separate `mcpbus serve --services` processes, and returns
// the ingress URL.
func splitDeployment(bin, cfgPath, tmp string, env []string) (string, []*proc, error) {
	natsAddr, err := freePort()
	if err != nil {
		return "", nil, err
	}
	natsURL := "nats://" + natsAddr
	env = append(slices.Clone(env), "MCPBUS_NATS_USER=bench-split", "MCPBUS_NATS_PASSWORD="+busPassword)
	var procs []*proc
	start := func(name string, args ...string) (string, error) {
		p, err := startProc(name, bin, append([]string{"serve", "--config", cfgPath, "--data", filepath.Join(tmp, name+"-data")}, args...), env, tmp)
		if err != nil {
			return "", err
		}
		procs = append(procs, p)
		return p.waitListening(30 * time.Second)
	}
	if _, err := start("split-nats", "--services", "nats", "--nats-listen", natsAddr); err != nil {
		return "", procs, err
	}
	for _, svc := range []string{"auth,registry", "router", "workers"} {
		if _, err := start("split-"+svc, "--services", svc, "--nats", natsURL); err != nil {
			return "", procs, err
		}
	}
	u, err := start("split-ingress", "--services", "ingress", "--nats", natsURL, "--listen", "127.0.0.1:0")
	return u, procs, err
}

// measureSplit runs interleaved direct / split phases at c=1 and c=high.
func measureSplit(ctx context.Context, o options, r *report, direct *target, viaAuth http.Header, cfgPath, tmp string, env []string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "split deployment: nats, auth+registry, router, workers, ingress as 5 processes\n")
	u, procs, err := splitDeployment(o.bin, cfgPath, tmp, env)
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	if err != nil {
		return fmt.Errorf("split deployment: %w", err)
	}
	via := newTarget("mcpbus-split", u+"/mcp/demo", viaAuth)
	if res := runPhase(ctx, via, o.high, o.warmup, errs, "warm-up split", phaseHooks{}); res.Calls == 0 {
		return fmt.Errorf("split warm-up: no successful call: %v", errs.samples)
	}
	s := &splitResult{}
	for _, p := range procs {
		s.Processes = append(s.Processes, p.name)
	}
	for round := 1; round <= o.rounds; round++ {
		for _, c := range []int{1, o.high} {
			for _, t := range []*target{direct, via} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				label := fmt.Sprintf("split round %d c=%d %s", round, c, t.name)
				res := runPhase(ctx, t, c, o.duration, errs, label, phaseHooks{})
				res.Round = round
				fmt.Fprintf(os.Stderr, "%-32s %7d calls  p50 %6.3f ms  p99 %6.3f ms  %8.0f calls/s  errors %d\n", label, res.Calls, res.P50ms, res.P99ms, res.CallsPerSec, res.Errors)
				if res.Calls == 0 {
					return fmt.Errorf("%s: no successful call: %v", label, errs.samples)
				}
				s.Phases = append(s.Phases, res)
			}
		}
	}
	for _, c := range []int{1, o.high} {
		var d, m []phaseResult
		for _, p := range s.Phases {
			if p.Concurrency == c && p.Target == "direct" {
				d = append(d, p)
			} else if p.Concurrency == c {
				m = append(m, p)
			}
		}
		sum := summary{Concurrency: c, Direct: statsOf(d), MCPBus: statsOf(m)}
		var added, ratio []float64
		for i := range min(len(d), len(m)) {
			added = append(added, m[i].P50ms-d[i].P50ms)
			if d[i].CallsPerSec > 0 {
				ratio = append(ratio, m[i].CallsPerSec/d[i].CallsPerSec)
			}
		}
		sum.AddedP50ms, sum.Ratio = median(added), median(ratio)
		s.Summary = append(s.Summary, sum)
	}
	s.AddedP50ms, s.Ratio = s.Summary[0].AddedP50ms, s.Summary[1].Ratio
	r.Split = s
	return nil
}
