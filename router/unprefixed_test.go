package router

import (
	"strings"
	"testing"
)

// A server marked unprefixed keeps its tools' own names on an aggregated
// endpoint, beside prefixed ones; a name another unprefixed server took
// first (by server name) gets the collision suffix, and calls reach the
// server each name belongs to.
func TestUnprefixedServerKeepsItsNames(t *testing.T) {
	a := &fakeWorker{name: "a", tools: []string{"echo", "only-a"}}
	b := &fakeWorker{name: "b", tools: []string{"echo"}}
	c := &fakeWorker{name: "c", tools: []string{"echo"}}
	specs := servers("a", "b", "c")
	specs[0].Unprefixed, specs[1].Unprefixed = true, true
	h := startHarness(t, Options{}, specs, a, b, c)
	var l listed
	h.result(internal(), request(1, "tools/list", ""), &l)
	var names []string
	for _, tool := range l.Tools {
		names = append(names, tool.Name)
	}
	if len(names) != 4 || names[0] != "echo" || names[1] != "only-a" || !strings.HasPrefix(names[2], "echo_") || names[3] != "c__echo" {
		t.Fatalf("names %v, want echo (a), only-a, echo_<hash> (b), c__echo", names)
	}
	for name, want := range map[string]pair{"echo": {"a", "echo"}, "only-a": {"a", "only-a"}, names[2]: {"b", "echo"}, "c__echo": {"c", "echo"}} {
		var got called
		h.result(internal(), request(2, "tools/call", `{"name":"`+name+`"}`), &got)
		if got.Server != want.server || !strings.Contains(string(got.Params), `"name":"`+want.name+`"`) {
			t.Errorf("%s reached %s with %s, want %s with its name %q", name, got.Server, got.Params, want.server, want.name)
		}
	}
}
