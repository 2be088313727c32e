package bus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/bustest"
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
	}
	if got := bus.AsError(errors.New("dial tcp: secret=hunter2")); got.Message != "internal error" {
		t.Errorf("a plain error leaked its text to the caller: %q", got.Message)
	}
}
