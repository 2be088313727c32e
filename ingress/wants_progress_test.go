package ingress

import (
	"encoding/json"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// Only params._meta.progressToken switches the answer to SSE; the word anywhere
// else (say, in a tool argument) does not.
func TestWantsProgress(t *testing.T) {
	for params, want := range map[string]bool{
		`{"name":"slow","_meta":{"progressToken":"t1"}}`:              true,
		`{"name":"slow","_meta":{"progressToken":7}}`:                 true,
		`{"name":"slow","_meta":{"progressToken":null}}`:              false,
		`{"name":"echo","arguments":{"text":"\"progressToken\": 1"}}`: false,
		`{"name":"echo","arguments":{"progressToken":"x"}}`:           false,
		`{"name":"echo"}`: false,
	} {
		if got := wantsProgress(&bus.Message{Params: json.RawMessage(params)}); got != want {
			t.Errorf("wantsProgress(%s) = %v, want %v", params, got, want)
		}
	}
}
