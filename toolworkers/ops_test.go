package toolworkers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startWithMetrics starts a manager whose workers record into a fresh
// Metrics.
func (e *mgrEnv) startWithMetrics(t *testing.T) (*Manager, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	mgr, err := StartManager(ctx, e.nc, ManagerOptions{Worker: Options{Log: slog.New(slog.NewTextHandler(e.logs, nil)), JetStream: e.js, Metrics: m}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	return mgr, m
}

// A drained record retires its worker: the call in flight finishes, a new
// one finds no worker, the server shows as drained, and undraining starts a
// worker again. mcpbus_worker_in_flight_calls counts the held call.
func TestManagerDrainsAndUndrains(t *testing.T) {
	e := newMgrEnv(t)
	mgr, m := e.startWithMetrics(t)
	one := newMgrUpstream(t, "one")
	e.put(t, bus.ServerSpec{Name: "alpha", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "alpha is served", answers(e.nc, "alpha", "one"))

	held := make(chan error, 1)
	go func() {
		got, err := callTool(e.nc, "alpha", `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"hold","arguments":{}}}`, 30*time.Second)
		if err == nil && got != "held" {
			err = fmt.Errorf("hold answered %q", got)
		}
		held <- err
	}()
	<-one.held
	// The worker counts a call out after its answer is sent, so the last
	// "who" of the wait above may still be counted for a moment.
	bustest.Eventually(t, 10*time.Second, "one call in flight while one is held", func() error {
		if got := testutil.ToFloat64(m.inCalls.WithLabelValues("alpha")); got != 1 {
			return fmt.Errorf("in-flight calls: %v", got)
		}
		return nil
	})

	e.put(t, bus.ServerSpec{Name: "alpha", URL: one.url, Drain: true})
	bustest.Eventually(t, 30*time.Second, "a drained server's worker takes no call", noResponders(e.nc, "alpha"))
	if got := mgr.Drained(); !reflect.DeepEqual(got, []string{"alpha"}) {
		t.Fatalf("Drained() = %v", got)
	}
	if got := mgr.Hosted(); len(got) != 0 {
		t.Fatalf("Hosted() while drained = %v", got)
	}
	if got := testutil.ToFloat64(m.drained.WithLabelValues("alpha")); got != 1 {
		t.Fatalf("mcpbus_worker_drained = %v", got)
	}
	one.release()
	if err := <-held; err != nil {
		t.Fatalf("the call in flight when the server was drained: %v", err)
	}
	bustest.Eventually(t, 30*time.Second, "the retired worker's call is no longer counted", func() error {
		return bustest.Want("in-flight calls", testutil.ToFloat64(m.inCalls.WithLabelValues("alpha")), 0.0)
	})

	e.put(t, bus.ServerSpec{Name: "alpha", URL: one.url})
	bustest.Eventually(t, 30*time.Second, "an undrained server is served again", answers(e.nc, "alpha", "one"))
	if got := mgr.Drained(); len(got) != 0 {
		t.Fatalf("Drained() after undrain = %v", got)
	}
	if n := testutil.CollectAndCount(m.drained); n != 0 {
		t.Fatalf("%d drained series after undrain", n)
	}
}

// callAs calls who on server as a caller of the downstream session sid.
func callAs(nc *nats.Conn, server, sid string) (string, error) {
	env := bus.Envelope{RequestID: "r-" + sid, Session: sid, IPClass: bus.Internal, Caller: bus.Identity{Permissions: bus.Permissions{AllServers: true}}}
	msg, err := nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC(server), Header: env.Header(),
		Data: []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"who","arguments":{}}}`)}, 10*time.Second)
	if err != nil {
		return "", err
	}
	if e := bus.ReplyError(msg); e != nil {
		return "", e
	}
	var r struct {
		Result struct{ Content []struct{ Text string } }
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil || len(r.Result.Content) == 0 {
		return "", fmt.Errorf("answer %s: %v", msg.Data, err)
	}
	return r.Result.Content[0].Text, nil
}

// A canary gets canary_percent of the sessions, each session always the same
// variant (CanaryBucket), and the metrics count each variant's calls apart.
func TestCanarySplitsBySession(t *testing.T) {
	for _, pct := range []int{0, 50, 100} {
		t.Run(fmt.Sprint(pct), func(t *testing.T) {
			e := newMgrEnv(t)
			_, m := e.startWithMetrics(t)
			stable, canary := newMgrUpstream(t, "stable"), newMgrUpstream(t, "canary")
			e.put(t, bus.ServerSpec{Name: "c", URL: stable.url, CanaryURL: canary.url, CanaryPercent: pct})
			bustest.Eventually(t, 30*time.Second, "c is served", func() error { _, err := callAs(e.nc, "c", "probe"); return err })
			want := map[string]float64{}
			for i := range 40 {
				sid := fmt.Sprintf("session-%d", i)
				variant := "stable"
				if CanaryBucket("c", sid) < pct {
					variant = "canary"
				}
				for range 2 { // a session stays on its variant
					got, err := callAs(e.nc, "c", sid)
					if err != nil || got != variant {
						t.Fatalf("%s answered by %q (%v), want %s", sid, got, err, variant)
					}
				}
				want[variant] += 2
			}
			if pct == 50 && (want["stable"] == 0 || want["canary"] == 0) {
				t.Fatalf("50%%: one variant got nothing: %v", want)
			}
			// The probe session counts too.
			if CanaryBucket("c", "probe") < pct {
				want["canary"]++
			} else {
				want["stable"]++
			}
			for _, v := range []string{"stable", "canary"} {
				if got := testutil.ToFloat64(m.calls.WithLabelValues("c", "tools/call", "other", "ok", v)) + testutil.ToFloat64(m.calls.WithLabelValues("c", "tools/call", "who", "ok", v)); got != want[v] {
					t.Errorf("calls{variant=%s} = %v, want %v", v, got, want[v])
				}
			}
		})
	}
}

// A failing canary fails only its own share, counted under variant=canary;
// the stable upstream's errors and breaker stay clean.
func TestFailingCanaryShowsInCanaryErrorsOnly(t *testing.T) {
	e := newMgrEnv(t)
	_, m := e.startWithMetrics(t)
	stable := newMgrUpstream(t, "stable")
	e.put(t, bus.ServerSpec{Name: "f", URL: stable.url, CanaryURL: upstreamtest.ClosedURL(t), CanaryPercent: 50, CircuitBreakerThreshold: 100})
	bustest.Eventually(t, 30*time.Second, "f is served", func() error {
		for i := range 20 {
			if sid := fmt.Sprint("s", i); CanaryBucket("f", sid) >= 50 {
				_, err := callAs(e.nc, "f", sid)
				return err
			}
		}
		return errors.New("no stable session")
	})
	failed, ok := 0, 0
	for i := range 20 {
		sid := fmt.Sprint("s", i)
		got, err := callAs(e.nc, "f", sid)
		if CanaryBucket("f", sid) < 50 {
			var be *bus.Error
			if !errors.As(err, &be) || be.Kind != bus.ErrUpstreamUnavailable {
				t.Fatalf("canary session %s: %q, %v; want UPSTREAM_UNAVAILABLE", sid, got, err)
			}
			failed++
		} else if err != nil || got != "stable" {
			t.Fatalf("stable session %s: %q, %v", sid, got, err)
		} else {
			ok++
		}
	}
	if failed == 0 || ok == 0 {
		t.Fatalf("sessions: %d canary, %d stable; want both", failed, ok)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("f", bus.ErrUpstreamUnavailable.Code, "canary")); got != float64(failed) {
		t.Errorf("canary errors = %v, want %d", got, failed)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues("f", bus.ErrUpstreamUnavailable.Code, "stable")); got != 0 {
		t.Errorf("stable errors = %v, want 0", got)
	}
}

// A stdio record runs a command only if this process's config file names it,
// as the server's command or as its canary's (which promote makes the
// command); anything else is refused.
func TestStdioTrustCoversTheFilesCanary(t *testing.T) {
	file := []bus.ServerSpec{{Name: "s", Transport: "stdio", Command: "srv", Args: []string{"v1"}, CanaryCommand: "srv", CanaryArgs: []string{"v2"}}}
	for _, c := range []struct {
		args []string
		ok   bool
	}{{[]string{"v1"}, true}, {[]string{"v2"}, true}, {[]string{"v3"}, false}} {
		err := namedByConfig(bus.ServerSpec{Name: "s", Transport: "stdio", Command: "srv", Args: c.args}, file)
		if (err == nil) != c.ok {
			t.Errorf("args %v: %v, want allowed=%v", c.args, err, c.ok)
		}
	}
}
