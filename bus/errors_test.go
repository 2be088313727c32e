package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// An error raised in a service must arrive at the requester with the same kind
// and message, through micro's headers on a real server.
func TestErrorTravelsOverMicro(t *testing.T) {
	nc := bustest.Conn(t, bustest.Server(t))
	svc, err := micro.AddService(nc, micro.Config{Name: "errsvc", Version: "0.0.1",
		Endpoint: &micro.EndpointConfig{Subject: "test.err", Handler: micro.HandlerFunc(func(r micro.Request) {
			bus.RespondError(r, bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q did not answer within 2s", "slow"))
		})}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	msg, err := nc.Request("test.err", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := bus.ReplyError(msg)
	if e == nil || e.Kind != bus.ErrUpstreamTimeout || e.Message != `upstream server "slow" did not answer within 2s` {
		t.Fatalf("got %+v", e)
	}
	if bus.ReplyError(&nats.Msg{Header: nats.Header{}}) != nil {
		t.Fatal("a reply without error headers read as an error")
	}
	_, err = nc.Request("test.nobody", nil, time.Second)
	if re := bus.RequestError("router", err); re.Kind != bus.ErrServiceUnavailable {
		t.Fatalf("no responders mapped to %v", re.Kind)
	}
}

func TestCatalogCodesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range bus.Catalog() {
		if seen[k.Code] {
			t.Errorf("duplicate code %s", k.Code)
		}
		seen[k.Code] = true
		if k.RPC > -32000 && k.RPC != 0 || k.HTTP < 200 {
			t.Errorf("%s: rpc %d http %d out of range", k.Code, k.RPC, k.HTTP)
		}
		if k.REST < 400 || k.HTTP != http.StatusOK && k.REST != k.HTTP {
			t.Errorf("%s: REST status %d (HTTP %d): an error status, the HTTP one unless that is 200", k.Code, k.REST, k.HTTP)
		}
	}
	if got := bus.AsError(errors.New("dial tcp: secret=hunter2")); got.Message != "internal error" {
		t.Errorf("a plain error leaked its text to the caller: %q", got.Message)
	}
}

// An error keeps its cause for the log and for errors.Is, never for the
// caller; a URL in the cause is left out of the log line (it may carry a
// credential in its path or query).
func TestErrorKeepsItsCause(t *testing.T) {
	disk := errors.New("disk full")
	e := bus.AsError(fmt.Errorf("write session: %w", disk))
	if e.Kind != bus.ErrInternal || e.Message != "internal error" {
		t.Fatalf("the caller sees %s %q", e.Kind.Code, e.Message)
	}
	if !errors.Is(e, disk) || e.Detail() != "internal error: write session: disk full" {
		t.Fatalf("cause lost: Is %v, Detail %q", errors.Is(e, disk), e.Detail())
	}
	ue := &url.Error{Op: "Post", URL: "https://up.example/sk-secret-path/mcp?token=hunter2", Err: errors.New("connection refused")}
	w := bus.Wrap(bus.ErrUpstreamUnavailable, ue, "upstream server %q is unavailable", "x")
	if d := w.Detail(); strings.Contains(d, "secret") || strings.Contains(d, "hunter2") || d != `upstream server "x" is unavailable: Post: connection refused` {
		t.Fatalf("Detail %q", d)
	}
	if d := bus.Errorf(bus.ErrUpstreamAuth, "refused").Detail(); d != "refused" {
		t.Fatalf("Detail without a cause: %q", d)
	}
}

// The context error of an upstream call: timeout or cancelled, keeping the
// context's error.
func TestContextError(t *testing.T) {
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel()
	if e := bus.ContextError(ctx, "x"); e.Kind != bus.ErrUpstreamTimeout || e.Message != `upstream server "x" did not answer in time` || !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("deadline: %s %q", e.Kind.Code, e.Message)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if e := bus.ContextError(ctx, "x"); e.Kind != bus.ErrUpstreamUnavailable || e.Message != `call to upstream server "x" was cancelled` || !errors.Is(e, context.Canceled) {
		t.Fatalf("cancelled: %s %q", e.Kind.Code, e.Message)
	}
}
