package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// canaryRun opens sessions to server c until it has seen both variants (at
// least min sessions), calls who twice on each and checks that every session
// stays on the variant CanaryBucket gives it. It returns the calls per
// variant.
func canaryRun(t *testing.T, base string, percent, min int) map[string]float64 {
	t.Helper()
	calls := map[string]float64{}
	for i := 0; i < 64 && (i < min || (percent > 0 && percent < 100 && (calls["stable"] == 0 || calls["canary"] == 0))); i++ {
		cs, err := connectSessionEra(t, base+"/mcp/c", bearer(opsMaster))
		if err != nil {
			t.Fatal(err)
		}
		want := "stable"
		if toolworkers.CanaryBucket("c", cs.ID()) < percent {
			want = "canary"
		}
		for range 2 {
			if got, err := opsCall(cs, "who"); err != nil || got != want {
				t.Fatalf("session %d at %d%%: answered by %q (%v), want %s", i, percent, got, err, want)
			}
		}
		calls[want] += 2
		cs.Close()
	}
	return calls
}

// whoCalls is the count of ok who calls of c's variant in the metrics.
func whoCalls(t *testing.T, base, variant string) float64 {
	v := metricValue(scrapeMetrics(t, base), "mcpbus_upstream_calls_total",
		labels{"server": "c", "method": "tools/call", "tool": "who", "status": "ok", "variant": variant})
	return max(v, 0)
}

// A canary through the admin API, with real go-sdk clients: at 50% sessions
// split between the two upstreams, each staying on one, counted per variant;
// at 100% and 0% all go to one; promote makes the canary the server; a
// failing canary shows in the canary's errors only.
func TestCanaryThroughTheGateway(t *testing.T) {
	stable, canary, next := newOpsUpstream(t, "stable"), newOpsUpstream(t, "canary"), newOpsUpstream(t, "next")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  c: {url: %q}
`, opsMaster, stable.url), nil)
	base := g.URL()
	post := func(path, body string) string {
		t.Helper()
		status, _, out := rest(t, http.MethodPost, base+"/v1/mcp/server/c"+path, opsMaster, body)
		if status != http.StatusOK {
			t.Fatalf("POST %s %s: HTTP %d %s", path, body, status, out)
		}
		return out
	}
	// Each change restarts the worker; the first session after it waits for
	// the new one (a call before it is up may find none), and, with a
	// variant wanted, for the old one to leave the queue group: while both
	// serve, a session may still reach the old record's split, so eight
	// sessions in a row must reach the wanted variant.
	settle := func(want string) {
		t.Helper()
		bustest.Eventually(t, 30*time.Second, "the worker with the new record serves", func() error {
			rounds := 1
			if want != "" {
				rounds = 8
			}
			for range rounds {
				cs, err := connectSessionEra(t, base+"/mcp/c", bearer(opsMaster))
				if err != nil {
					return err
				}
				got, err := opsCall(cs, "who")
				cs.Close()
				if want == "" {
					return err
				}
				if e := bustest.Want("who", fmt.Sprint(got, err), want+"<nil>"); e != nil {
					return e
				}
			}
			return nil
		})
	}

	out := post("/canary", fmt.Sprintf(`{"url": %q, "percent": 50}`, canary.url))
	if !strings.Contains(out, `"canary_percent":50`) || !strings.Contains(out, `"canary_url":`) {
		t.Fatalf("canary answer: %s", out)
	}
	settle("")
	before := map[string]float64{"stable": whoCalls(t, base, "stable"), "canary": whoCalls(t, base, "canary")}
	calls := canaryRun(t, base, 50, 10)
	if calls["stable"] == 0 || calls["canary"] == 0 {
		t.Fatalf("50%%: calls per variant %v, want both", calls)
	}
	for _, v := range []string{"stable", "canary"} {
		if got := whoCalls(t, base, v) - before[v]; got != calls[v] {
			t.Errorf("mcpbus_upstream_calls_total{variant=%s} grew by %v, want %v", v, got, calls[v])
		}
	}
	if got := metricValue(scrapeMetrics(t, base), "mcpbus_worker_canary_percent", labels{"server": "c"}); got != 50 {
		t.Errorf("mcpbus_worker_canary_percent = %v", got)
	}

	post("/canary", `{"percent": 100}`)
	settle("canary")
	if calls := canaryRun(t, base, 100, 5); calls["stable"] != 0 {
		t.Fatalf("100%%: %v", calls)
	}
	post("/canary", `{"percent": 0}`)
	settle("stable")
	if calls := canaryRun(t, base, 0, 5); calls["canary"] != 0 {
		t.Fatalf("0%%: %v", calls)
	}

	// A failing canary: its share fails, counted as the canary's errors only.
	post("/canary", fmt.Sprintf(`{"url": %q, "percent": 100}`, upstreamtest.ClosedURL(t)))
	stableErrs := metricValue(scrapeMetrics(t, base), "mcpbus_upstream_errors_total", labels{"server": "c", "variant": "stable"})
	bustest.Eventually(t, 30*time.Second, "the failing canary's calls fail", func() error {
		cs, err := connectSessionEra(t, base+"/mcp/c", bearer(opsMaster))
		if err != nil {
			return err
		}
		defer cs.Close()
		_, err = opsCall(cs, "who")
		if rpcCode(err) != bus.ErrUpstreamUnavailable.RPC {
			return fmt.Errorf("a call at 100%% to a closed canary: %v", err)
		}
		return nil
	})
	mf := scrapeMetrics(t, base)
	if v := metricValue(mf, "mcpbus_upstream_errors_total", labels{"server": "c", "code": bus.ErrUpstreamUnavailable.Code, "variant": "canary"}); v < 1 {
		t.Errorf("canary errors = %v, want at least 1", v)
	}
	if v := metricValue(mf, "mcpbus_upstream_errors_total", labels{"server": "c", "variant": "stable"}); v != stableErrs {
		t.Errorf("stable errors went from %v to %v", stableErrs, v)
	}

	// Promote: the canary becomes the server's url, for every session.
	post("/canary", fmt.Sprintf(`{"url": %q, "percent": 10}`, next.url))
	out = post("/canary/promote", "")
	if strings.Contains(out, "canary_") || !strings.Contains(out, next.url) {
		t.Fatalf("promote answer: %s", out)
	}
	settle("next")
	var cs *mcp.ClientSession
	for range 5 {
		cs, _ = connectSessionEra(t, base+"/mcp/c", bearer(opsMaster))
		if got, err := opsCall(cs, "who"); err != nil || got != "next" {
			t.Fatalf("after promote: %q, %v", got, err)
		}
	}
	// Abort: DELETE removes a canary, the stable upstream takes every call.
	post("/canary", fmt.Sprintf(`{"url": %q, "percent": 100}`, canary.url))
	settle("canary")
	status, _, out := rest(t, http.MethodDelete, base+"/v1/mcp/server/c/canary", opsMaster, "")
	if status != http.StatusOK || strings.Contains(out, "canary_") {
		t.Fatalf("abort: HTTP %d %s", status, out)
	}
	settle("next")
}

// Every refusal of the operations API is explicit: status, code and a
// message naming the field.
func TestOpsAPIRefusals(t *testing.T) {
	up := newOpsUpstream(t, "a")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q}
`, opsMaster, up.url), nil)
	base := g.URL() + "/v1/mcp/server/"
	for _, c := range []struct {
		name, method, path, key, body string
		status                        int
		code, msg                     string
	}{
		{"percent over 100", "POST", "a/canary", opsMaster, `{"url":"https://b.example.com/mcp","percent":101}`, 400, bus.ErrBadRequest.Code, "percent: must be a whole number from 0 to 100"},
		{"misspelt field", "POST", "a/canary", opsMaster, `{"url":"https://b.example.com/mcp","precent":10}`, 400, bus.ErrBadRequest.Code, "precent: not a field of this request"},
		{"percent a string", "POST", "a/canary", opsMaster, `{"percent":"ten"}`, 400, bus.ErrBadRequest.Code, "percent: expected int"},
		{"canary not http", "POST", "a/canary", opsMaster, `{"url":"ftp://b.example.com/mcp"}`, 400, bus.ErrBadRequest.Code, "mcp_servers.a.canary_url: must be an http(s) URL"},
		{"percent without canary", "POST", "a/canary", opsMaster, `{"percent":10}`, 400, bus.ErrBadRequest.Code, "mcp_servers.a.canary_percent: needs a canary"},
		{"promote without canary", "POST", "a/canary/promote", opsMaster, "", 409, bus.ErrConflict.Code, "MCP server 'a' has no canary to promote"},
		{"drain without drain", "POST", "a/drain", opsMaster, `{}`, 400, bus.ErrBadRequest.Code, "drain: required"},
		{"drain unknown server", "POST", "nope/drain", opsMaster, `{"drain":true}`, 404, bus.ErrNotFound.Code, "MCP server 'nope' does not exist"},
		{"not the master key", "POST", "a/drain", "sk-nobody", `{"drain":true}`, 401, bus.ErrUnauthorized.Code, ""},
		{"GET drain", "GET", "a/drain", opsMaster, "", 405, bus.ErrMethodNotAllowed.Code, "use POST"},
	} {
		status, _, body := rest(t, c.method, base+c.path, c.key, c.body)
		var e restErr
		_ = json.Unmarshal([]byte(body), &e)
		if status != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: HTTP %d %s; want %d %s %q", c.name, status, body, c.status, c.code, c.msg)
		}
	}
}
