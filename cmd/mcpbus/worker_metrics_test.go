package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// `mcpbus worker --admin-listen` serves the metrics a gateway's workers
// have: its calls per server, its limiter state, and its NATS connection.
func TestWorkerCommandMetrics(t *testing.T) {
	ns, nc, put := demoRegistry(t)
	put("demo")

	ctx, cancel := context.WithCancel(context.Background())
	logs, logw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- workerCmd(ctx, []string{"--nats", ns.ClientURL(), "--servers", "demo", "--admin-listen", "127.0.0.1:0", "--log-format", "json"}, io.Discard, logw)
		logw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	var metricsURL string
	lines := bufio.NewScanner(logs)
	for metricsURL == "" && lines.Scan() {
		var rec struct {
			Msg     string `json:"msg"`
			Metrics string `json:"metrics"`
		}
		if json.Unmarshal(lines.Bytes(), &rec) == nil && rec.Msg == "metrics and health" {
			metricsURL = rec.Metrics
		}
	}
	if metricsURL == "" {
		t.Fatal("the worker logged no metrics address")
	}
	go io.Copy(io.Discard, logs)
	if got, err := echoVia(nc, "demo", "hello"); err != nil || !strings.Contains(got, "hello") {
		t.Fatalf("demo: %s %v", got, err)
	}

	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`mcpbus_nats_connected{connection="mcpbus-worker"} 1`,
		`mcpbus_upstream_calls_total{`,
		`mcpbus_worker_in_flight{server="demo"} 0`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
