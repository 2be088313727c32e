package ingress

import (
	"log/slog"
	"net/http/httptest"
	"reflect"
	"testing"
)

func TestForwardHeaders(t *testing.T) {
	g := &Ingress{log: slog.Default()}
	r := httptest.NewRequest("POST", "/mcp", nil)
	r.Header.Set("Authorization", "Bearer sk-gw")
	r.Header.Set("X-Mcp-Github-Authorization", "Bearer gh-user-token")
	r.Header.Set("X-Mcp-Internal-Db-X-Tenant", "t1")
	r.Header.Set("X-Mcp-Servers", "github")                  // a selection, not a credential
	r.Header.Set("X-Mcp-Evil-Authorization", "Bearer sk-gw") // the gateway key, smuggled
	r.Header.Set("X-Mcp-Github-Sk-Gw", "v")                  // ... and in a header's name
	r.Header.Set("X-Mcp-Github-sk-gw-suffix", "v")
	r.Header.Set("X-Unrelated", "v")
	got := g.forwardHeaders(r, "sk-gw")
	want := map[string]string{"X-Mcp-Github-Authorization": "Bearer gh-user-token", "X-Mcp-Internal-Db-X-Tenant": "t1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("forwarded %v, want %v", got, want)
	}

	// When the key came in x-litellm-api-key, Authorization is the caller's
	// own upstream credential and may be forwarded where extra_headers asks.
	r = httptest.NewRequest("POST", "/mcp", nil)
	r.Header.Set("X-Litellm-Api-Key", "Bearer sk-gw")
	r.Header.Set("Authorization", "Bearer oauth-for-upstream")
	if got := g.forwardHeaders(r, "sk-gw"); got != nil {
		t.Fatalf("without an extra_headers list nothing but x-mcp-* is forwarded, got %v", got)
	}
}
