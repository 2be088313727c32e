package gateway

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A subscriptions/listen's resourceSubscriptions (MCP 2026-07-28) through
// the gateway, in front of a server that subscribes on a session: what
// resources/subscribe gives a session today, a stateless-era client gets
// with no session.

// watchedUpstream is a session-era server with one resource it tells
// subscribers about, counting what it is asked to subscribe and
// unsubscribe.
type watchedUpstream struct {
	srv        *mcp.Server
	url        string
	subscribed chan string
	mu         sync.Mutex
	unsubs     int
}

func (u *watchedUpstream) unsubscribed() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.unsubs
}

// newWatchedUpstream is a session-era server, or with stateless one of
// the 2026-07-28 era alone.
func newWatchedUpstream(t *testing.T, stateless bool) *watchedUpstream {
	t.Helper()
	u := &watchedUpstream{subscribed: make(chan string, 8)}
	var versions []string
	if stateless {
		versions = []string{"2026-07-28"}
	}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: "watched", Version: "1"}, &mcp.ServerOptions{
		SupportedProtocolVersions: versions,
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			u.subscribed <- r.Params.URI
			return nil
		},
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error {
			u.mu.Lock()
			u.unsubs++
			u.mu.Unlock()
			return nil
		},
	})
	u.srv.AddResource(&mcp.Resource{URI: "test://watched", Name: "watched", MIMEType: "text/plain"},
		func(_ context.Context, r *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.Params.URI, Text: "now"}}}, nil
		})
	u.url = serveMCP(t, u.srv, &mcp.StreamableHTTPOptions{Stateless: stateless})
	return u
}

// updateUntilHeard updates uri on u until updates hears of it: the
// stream that brings it opens in the background, and an update sent before
// is heard by nobody (not a bound: update it again).
func updateUntilHeard(t *testing.T, ctx context.Context, u *watchedUpstream, updates <-chan string, uri string) {
	t.Helper()
	for {
		if err := u.srv.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-updates:
			if got != uri {
				t.Fatalf("the client heard of %q, want %q", got, uri)
			}
			return
		case <-time.After(300 * time.Millisecond):
			if ctx.Err() != nil {
				t.Fatalf("no resources/updated for %s reached the client", uri)
			}
		}
	}
}

// The go-sdk client subscribes (a listen per URI) on aggregated /mcp; the
// gateway subscribes upstream, says so in the discover result, passes the
// resource's updates tagged to the listen, and unsubscribes upstream when
// the client closes it. The worker's upstream GET stream opens in the
// background, so the test updates the resource until the client hears of
// it, asserting no time.
func TestStatelessListenResourceSubscription(t *testing.T) {
	alpha, watched := newRelayUpstream(t, "alpha"), newWatchedUpstream(t, false)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_stateless_protocol: true}
mcp_servers:
  alpha: {url: %q}
  watched: {url: %q}
`, master, alpha.url, watched.url), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	updates := make(chan string, 16)
	cs := modernClient(t, g.URL()+"/mcp", &mcp.ClientOptions{ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
		updates <- r.Params.URI
	}})
	if caps := cs.InitializeResult().Capabilities; caps.Resources == nil || !caps.Resources.Subscribe {
		t.Fatalf("server/discover declares resources %+v, want subscribe", caps.Resources)
	}
	if _, err := cs.ListResources(ctx, nil); err != nil { // the router learns whose URI it is
		t.Fatal(err)
	}
	listening := make(chan error, 1)
	go func() { listening <- cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://watched"}) }()
	select {
	case uri := <-watched.subscribed:
		if uri != "test://watched" {
			t.Fatalf("the upstream was subscribed to %q", uri)
		}
	case err := <-listening:
		t.Fatalf("the listen ended before the upstream was subscribed: %v", err)
	case <-ctx.Done():
		t.Fatal("the upstream was never subscribed")
	}
	updateUntilHeard(t, ctx, watched, updates, "test://watched")
	if n := sessionCount(t, g); n != 0 {
		t.Errorf("the gateway holds %d sessions, want none", n)
	}
	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "test://watched"}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "closing the listen unsubscribes upstream", func() error {
		return bustest.Want("unsubscribes upstream", watched.unsubscribed(), 1)
	})
}

// In front of a server of the 2026-07-28 era alone, which has no
// resources/subscribe, a 2025-11-25 session's subscription becomes the
// worker's upstream listen naming the URI: the upstream's updates reach the
// session's GET stream, and its unsubscribe ends the upstream's.
func TestSessionSubscriptionOnAStatelessUpstream(t *testing.T) {
	watched := newWatchedUpstream(t, true)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  watched: {url: %q}
`, master, watched.url), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	updates := make(chan string, 16)
	cs := sessionEraClient(t, g.URL()+"/mcp/watched", &mcp.ClientOptions{ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
		updates <- r.Params.URI
	}})
	if caps := cs.InitializeResult().Capabilities; caps.Resources == nil || !caps.Resources.Subscribe {
		t.Fatalf("initialize declares resources %+v, want subscribe", caps.Resources)
	}
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://watched"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watched.subscribed: // by the worker's listen
	case <-ctx.Done():
		t.Fatal("the upstream was never subscribed")
	}
	updateUntilHeard(t, ctx, watched, updates, "test://watched") // the session's GET stream opens in the background
	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: "test://watched"}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the unsubscribe ends the upstream's subscription", func() error {
		return bustest.Want("unsubscribes upstream", watched.unsubscribed(), 1)
	})
}
