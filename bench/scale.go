package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Worker-replica scaling: one upstream that takes scaleLatency per call,
// with max_concurrent_requests scaleSlots per worker replica, so one replica
// serves at most scaleSlots/scaleLatency calls a second (160); 1, 2 and 4
// `mcpbus worker` processes serve it behind one split deployment (NATS,
// auth+registry, router, ingress as processes), under scaleClients
// concurrent callers. The calls/s ratio to 1 replica shows the queue group
// spreading the load.
const (
	scaleLatency = 50 * time.Millisecond
	scaleSlots   = 8
	scaleClients = 64
)

type scaleResult struct {
	LatencyMs  float64         `json:"upstream_latency_ms"`
	Slots      int             `json:"max_concurrent_requests"`
	Clients    int             `json:"clients"`
	Phases     []phaseResult   `json:"phases"`
	CallsPerS  map[int]float64 `json:"calls_per_s_by_workers"`
	Ratio2     float64         `json:"calls_per_s_ratio_2_to_1"`
	Ratio4     float64         `json:"calls_per_s_ratio_4_to_1"`
	Processes  int             `json:"processes_at_4"`
	Bottleneck string          `json:"limit_at_4"`
}

func measureScaling(ctx context.Context, o options, r *report, master, tmp string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "worker scaling: %s upstream, max_concurrent_requests %d, 1/2/4 worker processes, c=%d\n", scaleLatency, scaleSlots, scaleClients)
	up, upURL, err := startUpstream(o.bin, tmp, "scale-upstream", "--name", "scaled", "--call-latency", scaleLatency.String())
	if err != nil {
		return err
	}
	defer up.stop()
	cfgPath := filepath.Join(tmp, "scale.yaml")
	cfg := fmt.Sprintf(`general_settings:
  master_key: os.environ/MCPBUS_BENCH_MASTER_KEY
  mcp_bus_users:
    - {user: bench-split, password: os.environ/MCPBUS_BENCH_BUS_PASSWORD, roles: [auth, registry, router, workers, ingress]}
mcp_servers:
  scaled: {url: %s, max_concurrent_requests: %d}
`, upURL, scaleSlots)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	env := []string{"MCPBUS_BENCH_MASTER_KEY=" + master, "MCPBUS_BENCH_BUS_PASSWORD=" + busPassword}
	d, ingress, err := startDeployment(o.bin, cfgPath, tmp, "scale", env, "auth,registry", "router")
	defer d.stop()
	if err != nil {
		return err
	}
	t := newTarget("mcpbus-scaled", ingress+"/mcp/scaled", http.Header{"Authorization": {"Bearer " + master}})
	res := &scaleResult{LatencyMs: ms(scaleLatency), Slots: scaleSlots, Clients: scaleClients, CallsPerS: map[int]float64{}}
	workers := 0
	for _, want := range []int{1, 2, 4} {
		for workers < want {
			workers++
			if _, err := d.start(fmt.Sprintf("worker-%d", workers), "worker", "--nats", d.natsURL, "--servers", "scaled"); err != nil {
				return err
			}
		}
		// Every replica must have joined the queue group before the phase.
		if res := runPhase(ctx, t, scaleClients, o.warmup, errs, fmt.Sprintf("warm-up %d workers", want), phaseHooks{}); res.Calls == 0 {
			return fmt.Errorf("scaling warm-up with %d workers: no successful call: %v", want, errs.samples)
		}
		var rates []float64
		for round := 1; round <= o.rounds; round++ {
			p := runPhase(ctx, t, scaleClients, o.duration, errs, fmt.Sprintf("%d workers", want), phaseHooks{})
			p.Round, p.Target = round, fmt.Sprintf("workers=%d", want)
			res.Phases = append(res.Phases, p)
			rates = append(rates, p.CallsPerSec)
		}
		res.CallsPerS[want] = median(rates)
		fmt.Fprintf(os.Stderr, "  %d worker process(es): %.0f calls/s (median of %d)\n", want, res.CallsPerS[want], len(rates))
	}
	if one := res.CallsPerS[1]; one > 0 {
		res.Ratio2, res.Ratio4 = res.CallsPerS[2]/one, res.CallsPerS[4]/one
	}
	res.Processes = len(d.procs) + 1 // and the upstream
	ideal := float64(scaleSlots) / scaleLatency.Seconds()
	res.Bottleneck = fmt.Sprintf("%d processes (%s) and the load generator on %d CPUs; 4 replicas could serve %.0f calls/s upstream",
		res.Processes, strings.Join(names(d.procs), ", "), r.Machine.NumCPU, 4*ideal)
	r.Scaling = res
	return nil
}

func names(ps []*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	return out
}
