package servercache

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// A watcher hears of the servers there are, then of every change, in order.
func TestOnChange(t *testing.T) {
	c := &Cache{servers: map[string]bus.ServerSpec{}, log: slog.New(slog.DiscardHandler)}
	rec := func(name, transport string) []byte {
		return []byte(fmt.Sprintf(`{"server_name":%q,"transport":%q}`, name, transport))
	}
	c.apply("a", rec("a", "http"), false)
	var heard []string
	c.OnChange(func(name string, spec bus.ServerSpec, present bool) {
		heard = append(heard, fmt.Sprintf("%s:%s:%v", name, spec.Transport, present))
	})
	c.apply("b", rec("b", "connector"), false)
	c.apply("a", nil, true)
	c.apply("c", []byte(`{"server_name":"other"}`), false) // not its key: ignored, not heard
	want := "[a:http:true b:connector:true a::false]"
	if got := fmt.Sprint(heard); got != want {
		t.Fatalf("heard %s, want %s", got, want)
	}
	var nilCache *Cache
	nilCache.OnChange(func(string, bus.ServerSpec, bool) { t.Fatal("a nil cache called its watcher") })
}
