package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
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

	// The call's slot is freed just after its answer goes out: a scrape
	// at once may still count it in flight, so wait for the gauge to
	// settle.
	bustest.Eventually(t, 30*time.Second, "the worker's metrics", func() error {
		resp, err := http.Get(metricsURL)
		if err != nil {
			return err
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
				return fmt.Errorf("metrics lack %s", want)
			}
		}
		return nil
	})
}
