package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// LLM routes (issue 18): POST /v1/chat/completions to `mcpbus fake-llm`
// (OpenAI's wire, answering at once) directly and through a gateway whose
// model_list points at it, interleaved in each round, at c=1 and the high
// concurrency: JSON (time to the whole answer) and streaming (time to the
// first chunk). What the gateway adds: the ingress, the LLM router, the
// LLM worker, two bus hops each way, auth's verify.

type llmRow struct {
	Mode            string  `json:"mode"` // json, stream (first chunk)
	Concurrency     int     `json:"concurrency"`
	DirectP50ms     float64 `json:"direct_p50_ms"`
	MCPBusP50ms     float64 `json:"mcpbus_p50_ms"`
	AddedP50ms      float64 `json:"added_p50_ms"`
	DirectCallsPerS float64 `json:"direct_calls_per_s"`
	MCPBusCallsPerS float64 `json:"mcpbus_calls_per_s"`
	Ratio           float64 `json:"calls_per_s_ratio"`
}

type llmResult struct {
	Rows []llmRow `json:"rows"`
}

const llmBenchConfig = `general_settings:
  master_key: os.environ/MCPBUS_BENCH_MASTER_KEY
model_list:
  - model_name: bench-model
    litellm_params: {model: openai/fake-gpt, api_base: %s/v1, api_key: os.environ/MCPBUS_BENCH_LLM_KEY}
`

func measureLLM(ctx context.Context, o options, r *report, master, tmp string, errs *errorLog) error {
	fmt.Fprintf(os.Stderr, "LLM routes: /v1/chat/completions direct to fake-llm and through mcpbus, JSON and streaming, c=1 and c=%d\n", o.high)
	key := "sk-bench-llm-" + randHex(12)
	env := []string{"MCPBUS_BENCH_MASTER_KEY=" + master, "MCPBUS_BENCH_LLM_KEY=" + key}
	fake, err := startProc("fake-llm", o.bin, []string{"fake-llm", "--listen", "127.0.0.1:0", "--api-key-env", "MCPBUS_BENCH_LLM_KEY"}, env, tmp)
	if err != nil {
		return err
	}
	defer fake.stop()
	fakeURL, err := fake.waitListening(15 * time.Second)
	if err != nil {
		return err
	}
	fakeURL = strings.Fields(fakeURL)[0]
	cfg := filepath.Join(tmp, "llm.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(llmBenchConfig, fakeURL)), 0o600); err != nil {
		return err
	}
	gwEnv := slices.Clone(env)
	if o.gomaxprocs > 0 {
		gwEnv = append(gwEnv, fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs))
	}
	gw, err := startProc("llm-gateway", o.bin, []string{"serve", "--config", cfg, "--listen", "127.0.0.1:0",
		"--data", filepath.Join(tmp, "llm-data"), "--nats-listen", "off"}, gwEnv, tmp)
	if err != nil {
		return err
	}
	defer gw.stop()
	gwURL, err := gw.waitListening(30 * time.Second)
	if err != nil {
		return err
	}
	targets := []llmTarget{
		{name: "direct", url: fakeURL + "/v1/chat/completions", key: key, model: "fake-gpt"},
		{name: "mcpbus", url: gwURL + "/v1/chat/completions", key: master, model: "bench-model"},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}
	res := &llmResult{}
	for _, mode := range []string{"json", "stream"} {
		for _, c := range []int{1, o.high} {
			for _, t := range targets { // warm-up
				t.phase(ctx, client, mode, c, o.warmup, errs)
			}
			lat := map[string][]time.Duration{}
			rates := map[string][]float64{}
			for round := 0; round < o.rounds; round++ {
				for _, t := range targets {
					l, n := t.phase(ctx, client, mode, c, o.duration, errs)
					lat[t.name] = append(lat[t.name], l...)
					rates[t.name] = append(rates[t.name], float64(n)/o.duration.Seconds())
				}
			}
			p50 := func(name string) float64 {
				s := slices.Clone(lat[name])
				slices.Sort(s)
				return float64(percentile(s, 0.50).Microseconds()) / 1000
			}
			row := llmRow{Mode: mode, Concurrency: c, DirectP50ms: p50("direct"), MCPBusP50ms: p50("mcpbus"),
				DirectCallsPerS: median(rates["direct"]), MCPBusCallsPerS: median(rates["mcpbus"])}
			row.AddedP50ms = row.MCPBusP50ms - row.DirectP50ms
			if row.DirectCallsPerS > 0 {
				row.Ratio = row.MCPBusCallsPerS / row.DirectCallsPerS
			}
			res.Rows = append(res.Rows, row)
			fmt.Fprintf(os.Stderr, "  %s c=%d: p50 direct %.3f ms, mcpbus %.3f ms; calls/s ratio %.2f\n", mode, c, row.DirectP50ms, row.MCPBusP50ms, row.Ratio)
		}
	}
	r.LLM = res
	return nil
}

type llmTarget struct {
	name, url, key, model string
}

// phase drives t with c clients for d: the latency of each request (JSON:
// the whole answer; stream: the first chunk, the rest then read) and how
// many completed.
func (t llmTarget) phase(ctx context.Context, client *http.Client, mode string, c int, d time.Duration, errs *errorLog) ([]time.Duration, int) {
	body := `{"model":"` + t.model + `","messages":[{"role":"user","content":"measure the gateway"}]`
	if mode == "stream" {
		body += `,"stream":true`
	}
	body += `}`
	end := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(end) && ctx.Err() == nil {
				l, err := t.once(ctx, client, body, mode == "stream")
				if err != nil {
					errs.add("LLM "+t.name+" "+mode, err)
					continue
				}
				mine = append(mine, l)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return all, len(all)
}

func (t llmTarget) once(ctx context.Context, client *http.Client, body string, stream bool) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	if !stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	rd := bufio.NewReader(resp.Body)
	var first time.Duration
	for {
		line, err := rd.ReadBytes('\n')
		if first == 0 && bytes.HasPrefix(line, []byte("data: {")) {
			first = time.Since(start)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if first == 0 {
		return 0, fmt.Errorf("a stream without a chunk")
	}
	return first, nil
}
