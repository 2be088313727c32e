package ingress

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/servercache"
)

// What no route takes is answered in the REST error shape, naming the
// request: 404 for an unknown path, 405 with Allow for a known path taken
// with another method. Known routes answer as before.
func TestUnknownRoutesAnswerJSON(t *testing.T) {
	g := metricsIngress(t, Options{NC: testConn(t), Servers: &servercache.Cache{}})
	var body struct {
		Error struct{ Message, Type, Code string }
	}
	w := serve(g, http.MethodGet, "/v1/no-such-route", "203.0.113.9:1", nil, "")
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusNotFound ||
		w.Header().Get("Content-Type") != "application/json" || body.Error.Code != bus.ErrNotFound.Code ||
		!strings.Contains(body.Error.Message, "no such route: mcpbus serves /mcp") {
		t.Errorf("unknown route: HTTP %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	w = serve(g, http.MethodPost, "/health/liveliness", "203.0.113.9:1", nil, "")
	body.Error.Code = ""
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusMethodNotAllowed ||
		body.Error.Code != bus.ErrMethodNotAllowed.Code || !strings.Contains(w.Header().Get("Allow"), "GET") ||
		!strings.Contains(body.Error.Message, "POST is not served on /health/liveliness") {
		t.Errorf("wrong method: HTTP %d Allow %q %s", w.Code, w.Header().Get("Allow"), w.Body)
	}
	if w := serve(g, http.MethodGet, "/health/liveliness", "203.0.113.9:1", nil, ""); w.Code != http.StatusOK || w.Body.String() != `"I'm alive!"` {
		t.Errorf("a known route: HTTP %d %s", w.Code, w.Body)
	}
}

// LiteLLM's per-server route /{server}/mcp is /mcp/{server}.
func TestServerFirstRoute(t *testing.T) {
	for path, want := range map[string]string{"/github/mcp": "github", "/github/mcp/": "github", "/a/b/mcp": "", "/mcp": "", "//mcp": "", "/github/mcpx": ""} {
		got, ok := serverFirst(path)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", path, got, ok, want)
		}
	}
}
