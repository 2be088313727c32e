package bus_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// Direct takes exactly the requests the router would forward unchanged to one
// server; everything the router answers itself, aggregates or refuses stays
// with the router.
func TestDirect(t *testing.T) {
	cache := bustest.ServerCache(t, bustest.Server(t),
		bus.ServerSpec{Name: "internal", URL: "http://127.0.0.1:1/mcp"},
		bus.ServerSpec{Name: "public", URL: "http://127.0.0.1:2/mcp", Public: true})
	all := bus.Permissions{AllServers: true}
	in := func(servers ...string) bus.Envelope {
		return bus.Envelope{IPClass: bus.Internal, Caller: bus.Identity{Permissions: all}, Servers: servers}
	}
	ext := func(servers ...string) bus.Envelope {
		env := in(servers...)
		env.IPClass = bus.External
		return env
	}
	onlyPublic := in()
	onlyPublic.Caller.Permissions = bus.Permissions{Servers: []string{"public"}}
	call := &bus.Message{ID: json.RawMessage(`1`), Method: "tools/call"}
	for _, c := range []struct {
		name string
		env  bus.Envelope
		msg  *bus.Message
		want string // "" for the router
	}{
		{"selected server", in("internal"), call, "internal"},
		{"selected twice", in("public", "public"), call, "public"},
		// No selection aggregates, even one server (names stay prefixed).
		{"the one visible server", ext(), call, ""},
		{"the one permitted server", onlyPublic, call, ""},
		{"several servers: aggregated", in(), call, ""},
		{"internal-only server, external caller", ext("internal"), call, ""},
		{"server the key may not use", func() bus.Envelope { e := onlyPublic; e.Servers = []string{"internal"}; return e }(), call, ""},
		{"unknown server", in("nope"), call, ""},
		// A parked call's retry goes where the router sends it (era_park.go).
		{"a parked call's retry", in("internal"), &bus.Message{ID: json.RawMessage(`2`), Method: "tools/call",
			Params: json.RawMessage(`{"name":"t","requestState":"` + bus.ParkState("internal", "tok", 1, "s") + `"}`)}, ""},
		{"initialize", in("internal"), &bus.Message{ID: json.RawMessage(`1`), Method: "initialize"}, ""},
		{"ping", in("internal"), &bus.Message{ID: json.RawMessage(`1`), Method: "ping"}, ""},
		{"notification", in("internal"), &bus.Message{Method: "notifications/cancelled"}, ""},
		{"a client's response", in("internal"), &bus.Message{ID: json.RawMessage(`"mcpbus-s2c.demo.x.1"`), Result: json.RawMessage(`{}`)}, ""},
		{"no server the key may use", func() bus.Envelope { e := onlyPublic; e.Caller.Permissions.Servers = nil; return e }(), call, ""},
	} {
		s, ok := bus.Direct(cache, c.env, c.msg)
		if got := map[bool]string{true: s.Name}[ok]; got != c.want {
			t.Errorf("%s: direct to %q, want %q", c.name, got, c.want)
		}
	}
	if _, ok := bus.Direct(nil, in("internal"), call); ok {
		t.Error("no registry cache: a direct route")
	}
}

// CallDeadline is the server's timeout from now, or the caller's deadline if
// sooner; a timeout only the worker can read gets the longest allowed.
func TestCallDeadline(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		timeout  string
		caller   time.Time
		want     time.Time
		wantWait time.Duration
	}{
		{"", time.Time{}, now.Add(bus.DefaultCallTimeout), bus.DefaultCallTimeout},
		{"3s", time.Time{}, now.Add(3 * time.Second), 3 * time.Second},
		{"3s", now.Add(time.Second), now.Add(time.Second), 3 * time.Second},
		{"os.environ/SLOW", time.Time{}, now.Add(bus.MaxCallTimeout), bus.MaxCallTimeout},
	} {
		d, limit := bus.CallDeadline(bus.ServerSpec{Name: "s", Timeout: c.timeout}, bus.Envelope{Deadline: c.caller}, now)
		if !d.Equal(c.want) || limit != c.wantWait {
			t.Errorf("timeout %q, caller deadline %v: %v %v, want %v %v", c.timeout, c.caller, d, limit, c.want, c.wantWait)
		}
	}
}

// A record read from the bucket carries its timeout parsed; a copy whose
// timeout is then changed is read anew, never with the stale value.
func TestCallTimeoutOfARecord(t *testing.T) {
	for _, c := range []struct {
		record string
		want   time.Duration
	}{
		{`{"server_name":"s","timeout":"1.5s"}`, 1500 * time.Millisecond},
		{`{"server_name":"s"}`, bus.DefaultCallTimeout},
		{`{"server_name":"s","timeout":"os.environ/T"}`, bus.MaxCallTimeout},
	} {
		s, err := bus.DecodeServerRecord("s", []byte(c.record))
		if err != nil {
			t.Fatal(err)
		}
		if got := bus.CallTimeout(s); got != c.want {
			t.Errorf("%s: %v, want %v", c.record, got, c.want)
		}
		s.Timeout = "7s"
		if got := bus.CallTimeout(s); got != 7*time.Second {
			t.Errorf("%s, then timeout 7s: %v", c.record, got)
		}
	}
}
