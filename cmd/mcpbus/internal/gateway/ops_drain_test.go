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
	"github.com/nats-io/nats.go"
)

const opsMaster = "sk-ops-master-key"

// Drain end to end, through the admin API and real go-sdk clients: the call
// in flight finishes, a new call is refused by name as drained (not a
// timeout, not "no worker"), the aggregated list leaves the server out and
// says why, the registry, readiness and metrics show it; undrain restores it.
func TestDrainThroughTheGateway(t *testing.T) {
	alpha, beta := newOpsUpstream(t, "alpha"), newOpsUpstream(t, "beta")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  alpha: {url: %q}
  beta: {url: %q}
`, opsMaster, alpha.url, beta.url), nil)
	base := g.URL()
	one, err := connectPlain(t, base+"/mcp/alpha", bearer(opsMaster))
	if err != nil {
		t.Fatal(err)
	}
	all, err := connectPlain(t, base+"/mcp", bearer(opsMaster))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := opsCall(one, "who"); err != nil || got != "alpha" {
		t.Fatalf("before the drain: %q, %v", got, err)
	}

	held := make(chan string, 1)
	go func() {
		got, err := opsCall(one, "hold")
		if err != nil {
			got = err.Error()
		}
		held <- got
	}()
	<-alpha.held

	status, _, body := rest(t, http.MethodPost, base+"/v1/mcp/server/alpha/drain", opsMaster, `{"drain": true}`)
	if status != http.StatusOK || !strings.Contains(body, `"drain":true`) {
		t.Fatalf("drain: HTTP %d %s", status, body)
	}
	_, err = opsCall(one, "who")
	code := bus.ErrServerDrained.RPC
	if one.InitializeResult().ProtocolVersion >= bus.FirstModernVersion {
		code = bus.ErrServerDrained.ModernRPC() // mcpbus's codes leave the range 2026-07-28 reserves
	}
	if err == nil || !strings.Contains(err.Error(), `MCP server "alpha" is drained`) || rpcCode(err) != code {
		t.Fatalf("a new call to a drained server: %v (code %d); want the drained error", err, rpcCode(err))
	}

	// Its workers are off the bus (the refusal above is the router's).
	nc := testConn(t, g.Gateway)
	bustest.Eventually(t, 30*time.Second, "the drained server's worker leaves the bus", func() error {
		_, err := nc.Request(bus.ToolRPC("alpha"), []byte(`{}`), 5*time.Second)
		return bustest.Want("a request to alpha's workers", fmt.Sprint(err), nats.ErrNoResponders.Error())
	})
	alpha.release()
	if got := <-held; got != "held" {
		t.Fatalf("the call in flight when the server was drained: %q", got)
	}

	lt, err := all.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range lt.Tools {
		if strings.HasPrefix(tool.Name, "alpha__") {
			t.Errorf("the aggregated list holds a drained server's tool %s", tool.Name)
		}
	}
	meta, _ := json.Marshal(lt.Meta)
	if !strings.Contains(string(meta), bus.ErrServerDrained.Code) || !strings.Contains(string(meta), `\"alpha\" is drained`) {
		t.Errorf("the aggregated list does not say the server is drained: _meta %s", meta)
	}
	if _, err := opsCall(all, "alpha__who"); err == nil || !strings.Contains(err.Error(), `"alpha" is drained`) {
		t.Errorf("an aggregated call to a drained server's tool: %v", err)
	}
	if got, err := opsCall(all, "beta__who"); err != nil || got != "beta" {
		t.Errorf("the other server while alpha is drained: %q, %v", got, err)
	}

	_, _, rec := rest(t, http.MethodGet, base+"/v1/mcp/server/alpha", opsMaster, "")
	if !strings.Contains(rec, `"drain":true`) {
		t.Errorf("GET /v1/mcp/server/alpha while drained: %s", rec)
	}
	if _, _, ready := rest(t, http.MethodGet, base+"/health/readiness", "", ""); !strings.Contains(ready, `"status":"healthy"`) || !strings.Contains(ready, `"drained_servers":1`) {
		t.Errorf("readiness while drained: %s", ready)
	}
	_, _, health := rest(t, http.MethodGet, base+"/v1/mcp/server/health?server_ids=alpha", opsMaster, "")
	if !strings.Contains(health, `"unhealthy"`) || !strings.Contains(health, "is drained") {
		t.Errorf("server health while drained: %s", health)
	}
	bustest.Eventually(t, 10*time.Second, "the drained gauge", func() error {
		return bustest.Want("mcpbus_worker_drained{alpha}", metricValue(scrapeMetrics(t, base), "mcpbus_worker_drained", labels{"server": "alpha"}), 1.0)
	})

	status, _, body = rest(t, http.MethodPost, base+"/v1/mcp/server/alpha/drain", opsMaster, `{"drain": false}`)
	if status != http.StatusOK || strings.Contains(body, `"drain"`) {
		t.Fatalf("undrain: HTTP %d %s", status, body)
	}
	bustest.Eventually(t, 30*time.Second, "an undrained server answers again", func() error {
		got, err := opsCall(one, "who")
		return bustest.Want("who", fmt.Sprint(got, err), "alpha<nil>")
	})
	if v := metricValue(scrapeMetrics(t, base), "mcpbus_worker_drained", labels{"server": "alpha"}); v != -1 {
		t.Errorf("mcpbus_worker_drained{alpha} after undrain = %v", v)
	}
}
