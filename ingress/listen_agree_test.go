package ingress

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// What a subscriptions/listen may ask for, and the -32602 naming the member
// for what it may not: a session's bounds hold for a listen's resources.
func TestAgreeListen(t *testing.T) {
	many := make([]string, bus.MaxSubscriptions+1)
	for i := range many {
		many[i] = fmt.Sprintf("test://r%d", i)
	}
	manyJSON, _ := json.Marshal(many)
	for _, c := range []struct {
		params, wantErr string
		kinds, uris     int
	}{
		{params: `{"notifications":{"toolsListChanged":true,"resourceSubscriptions":["test://a","test://a","test://b"]}}`, kinds: 1, uris: 2},
		{params: `{"notifications":{"resourceSubscriptions":null}}`},
		{params: `{"notifications":{"toolsListChanged":"yes"}}`, wantErr: "notifications.toolsListChanged"},
		{params: `{"notifications":{"resourceSubscriptions":"test://a"}}`, wantErr: "must be an array"},
		{params: `{"notifications":{"resourceSubscriptions":["test://a",""]}}`, wantErr: "resourceSubscriptions[1] is empty"},
		{params: `{"notifications":{"resourceSubscriptions":["` + strings.Repeat("x", bus.MaxURILen+1) + `"]}}`, wantErr: "resourceSubscriptions[0] is longer"},
		{params: `{"notifications":{"resourceSubscriptions":` + string(manyJSON) + `}}`, wantErr: fmt.Sprintf("the most one listen may hold is %d", bus.MaxSubscriptions)},
		{params: `[]`, wantErr: "params must be an object"},
	} {
		ask, e := agreeListen(json.RawMessage(c.params))
		if c.wantErr != "" {
			if e == nil || e.Kind != bus.ErrInvalidParams || !strings.Contains(e.Message, c.wantErr) {
				t.Errorf("%.60s: got %v, want -32602 naming %q", c.params, e, c.wantErr)
			}
			continue
		}
		if e != nil || len(ask.kinds) != c.kinds || len(ask.uris) != c.uris {
			t.Errorf("%.60s: got %v %v %v", c.params, ask.kinds, ask.uris, e)
		}
	}
}

// The acknowledgement lists the agreed resources, sorted, beside the
// agreed list kinds, tagged with the listen's id.
func TestAcknowledgedResources(t *testing.T) {
	got := string(acknowledged(json.RawMessage(`"l1"`), map[string]bool{"notifications/tools/list_changed": true},
		map[string]bool{"test://b": true, "test://a": true}))
	want := `{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"l1"},"notifications":{"resourceSubscriptions":["test://a","test://b"],"toolsListChanged":true}}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
