package upstream

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// notifyFunc receives notifications the upstream sends on a request's stream.
type notifyFunc func(method string, params json.RawMessage)

// testRelay hands a call's notifications to fn and its server-to-client
// requests to answer (nil: refused as noRelay refuses them).
type testRelay struct {
	fn     notifyFunc
	answer func(m *bus.Message) []byte
}

func relayTo(fn notifyFunc) *testRelay { return &testRelay{fn: fn} }

func (r *testRelay) Notify(method string, params json.RawMessage) {
	if r.fn != nil {
		r.fn(method, params)
	}
}

func (r *testRelay) Request(ctx context.Context, m *bus.Message) []byte {
	if r.answer != nil {
		return r.answer(m)
	}
	return noRelay{}.Request(ctx, m)
}

func (r *testRelay) Hold()    {}
func (r *testRelay) Release() {}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
