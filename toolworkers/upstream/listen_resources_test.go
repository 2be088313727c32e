package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// paramEvents passes on what a client hears outside calls, with params.
type paramEvents struct{ heard chan string }

func (paramEvents) SessionOpened() {}
func (paramEvents) SessionLost()   {}
func (e *paramEvents) SessionNotification(method string, params json.RawMessage) {
	e.heard <- method + " " + string(params)
}
func (paramEvents) ServerRequest(_ context.Context, m *bus.Message) []byte {
	return Refusal(m.ID, CodeMethodNotFound, "no")
}

// subscribableServer is a server of the stateless era alone that lets one
// subscribe to test://* resources (a listen naming test://refused fails as
// a whole, as go-sdk fails it), counting the subscriptions it holds.
type subscribableServer struct {
	srv  *mcp.Server
	mu   sync.Mutex
	held map[string]int
}

func newSubscribableServer() *subscribableServer {
	u := &subscribableServer{held: map[string]int{}}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: "watched", Version: "1"}, &mcp.ServerOptions{
		SupportedProtocolVersions: []string{"2026-07-28"},
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			if r.Params.URI == "test://refused" {
				return errors.New("no such resource")
			}
			u.mu.Lock()
			u.held[r.Params.URI]++
			u.mu.Unlock()
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, r *mcp.UnsubscribeRequest) error {
			u.mu.Lock()
			u.held[r.Params.URI]--
			u.mu.Unlock()
			return nil
		},
	})
	u.srv.AddResource(&mcp.Resource{URI: "test://a", Name: "a"}, func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "a"}}}, nil
	})
	return u
}

func (u *subscribableServer) holds(uri string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.held[uri]
}

// resources/subscribe through a client of a stateless-era server is a
// listen that names the URI: it succeeds once the server agrees, the
// server's resources/updated reaches Events with its URI, a URI the server
// refuses is an error (and leaves the others subscribed), and unsubscribe
// reopens the listen without it.
func TestStatelessUpstreamResourceSubscriptions(t *testing.T) {
	u := newSubscribableServer()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.srv }, &mcp.StreamableHTTPOptions{Stateless: true}))
	t.Cleanup(srv.Close)
	c := eraClient(t, srv.URL+"/mcp", &Era{})
	ev := &paramEvents{heard: make(chan string, 16)}
	c.events = ev
	ctx := ctxTimeout(t, 20*time.Second)
	call := func(method, uri string) *bus.Message {
		t.Helper()
		msg, err := c.Call(ctx, method, json.RawMessage(`{"uri":"`+uri+`"}`), nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, uri, err)
		}
		return msg
	}
	if msg := call("resources/subscribe", "test://a"); len(msg.Error) > 0 || string(msg.Result) != "{}" {
		t.Fatalf("subscribe: %s", msg.Error)
	}
	if n := u.holds("test://a"); n != 1 {
		t.Fatalf("after the subscribe answered, the server holds %d subscriptions to test://a, want 1", n)
	}
	if err := u.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: "test://a"}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ev.heard:
		if got != `notifications/resources/updated {"uri":"test://a"}` {
			t.Fatalf("heard %s", got)
		}
	case <-ctx.Done():
		t.Fatal("resources/updated was not heard")
	}
	if msg := call("resources/subscribe", "test://refused"); !strings.Contains(string(msg.Error), "-32602") {
		t.Fatalf("subscribe to a refused resource: %s %s, want -32602", msg.Result, msg.Error)
	}
	waitFor(t, ctx, "test://a subscribed again after the refusal", func() bool { return u.holds("test://a") == 1 })
	call("resources/unsubscribe", "test://a")
	waitFor(t, ctx, "test://a unsubscribed upstream", func() bool { return u.holds("test://a") == 0 })
}

// waitFor polls cond until it holds or ctx ends (an observable event, not a
// bound: the listen reopens in the background).
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("never: %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
