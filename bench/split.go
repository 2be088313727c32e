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

// deployment is mcpbus as separate processes on one loopback NATS server
// (the production shape): `serve --services nats`, then one `serve
// --services` process per entry, the ingress last.
type deployment struct {
	bin, cfgPath, tmp, prefix string
	env                       []string
	natsURL                   string
	procs                     []*proc
}

// startDeployment starts NATS, the services (each a comma-separated
// --services value) and the ingress, names its processes prefix-*, and
// returns it with the ingress URL. Stop it with stop, even on an error.
func startDeployment(bin, cfgPath, tmp, prefix string, env []string, services ...string) (*deployment, string, error) {
	d := &deployment{bin: bin, cfgPath: cfgPath, tmp: tmp, prefix: prefix,
		env: append(slices.Clone(env), "MCPBUS_NATS_USER=bench-split", "MCPBUS_NATS_PASSWORD="+busPassword)}
	natsAddr, err := freePort()
	if err != nil {
		return d, "", err
	}
	d.natsURL = "nats://" + natsAddr
	if _, err := d.serve("nats", "--services", "nats", "--nats-listen", natsAddr); err != nil {
		return d, "", err
	}
	for _, svc := range services {
		if _, err := d.serve(svc, "--services", svc, "--nats", d.natsURL); err != nil {
			return d, "", err
		}
	}
	u, err := d.serve("ingress", "--services", "ingress", "--nats", d.natsURL, "--listen", "127.0.0.1:0")
	return d, u, err
}

// start runs `mcpbus args...` as prefix-name and waits for its listener.
func (d *deployment) start(name string, args ...string) (string, error) {
	p, err := startProc(d.prefix+"-"+name, d.bin, args, d.env, d.tmp)
	if err != nil {
		return "", err
	}
	d.procs = append(d.procs, p)
	return p.waitListening(30 * time.Second)
}

// serve starts one `mcpbus serve` process with the deployment's config.
func (d *deployment) serve(name string, args ...string) (string, error) {
	return d.start(name, append([]string{"serve", "--config", d.cfgPath, "--data", filepath.Join(d.tmp, d.prefix+"-"+name+"-data")}, args...)...)
}

// stop ends the processes, the last started first.
func (d *deployment) stop() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
}

// startUpstream starts `mcpbus demo-upstream` named name with args and
// returns it with its URL.
func startUpstream(bin, tmp, name string, args ...string) (*proc, string, error) {
	up, err := startProc(name, bin, append([]string{"demo-upstream", "--listen", "127.0.0.1:0"}, args...), nil, tmp)
	if err != nil {
		return nil, "", err
	}
	u, err := up.waitListening(15 * time.Second)
	if err != nil {
		up.stop()
		return nil, "", err
	}
	return up, u, nil
}

// measureSplit runs interleaved direct / split phases at c=1 and c=high.
func measureSplit(ctx context.Context, o options, r *report, direct *target, viaAuth http.Header, cfgPath, tmp string, env []string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "split deployment: nats, auth+registry, router, workers, ingress as 5 processes\n")
	d, u, err := startDeployment(o.bin, cfgPath, tmp, "split", env, "auth,registry", "router", "workers")
	defer d.stop()
	if err != nil {
		return fmt.Errorf("split deployment: %w", err)
	}
	via := newTarget("mcpbus-split", u+"/mcp/demo", viaAuth)
	if res := runPhase(ctx, via, o.high, o.warmup, errs, "warm-up split", phaseHooks{}); res.Calls == 0 {
		return fmt.Errorf("split warm-up: no successful call: %v", errs.samples)
	}
	s := &splitResult{}
	for _, p := range d.procs {
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
