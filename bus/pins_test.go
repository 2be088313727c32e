package bus

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A definition's hash does not depend on key order or fields a pin does not
// cover, and changes with any field it does.
func TestToolDefinitionIsCanonical(t *testing.T) {
	a := `{"name":"echo","description":"d","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}},"annotations":{"readOnlyHint":true},"_meta":{"x":1},"icons":[]}`
	b := `{"annotations":{"readOnlyHint":true},"inputSchema":{"properties":{"a":{"type":"number"},"b":{"type":"string"}},"type":"object"},"description":"d","name":"echo"}`
	na, ca, ha, err := ToolDefinition(json.RawMessage(a))
	if err != nil || na != "echo" {
		t.Fatalf("ToolDefinition: %q %v", na, err)
	}
	_, cb, hb, err := ToolDefinition(json.RawMessage(b))
	if err != nil || ha != hb || string(ca) != string(cb) {
		t.Fatalf("the same definition in another order: %s %s vs %s %s", ha, ca, hb, cb)
	}
	if string(ca) != `{"annotations":{"readOnlyHint":true},"description":"d","inputSchema":{"properties":{"a":{"type":"number"},"b":{"type":"string"}},"type":"object"},"name":"echo"}` {
		t.Fatalf("canonical: %s", ca)
	}
	for _, changed := range []string{
		`{"name":"echo","description":"d!","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}},"annotations":{"readOnlyHint":true}}`,
		`{"name":"echo","description":"d","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}},"annotations":{"readOnlyHint":false}}`,
		`{"name":"echo","description":"d","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}},"annotations":{"readOnlyHint":true},"outputSchema":{"type":"object"}}`,
		`{"name":"echo","title":"Echo","description":"d","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number"}}},"annotations":{"readOnlyHint":true}}`,
		`{"name":"echo","description":"d","inputSchema":{"type":"object","properties":{"b":{"type":"string"},"a":{"type":"number","minimum":1.0}}},"annotations":{"readOnlyHint":true}}`,
	} {
		if _, _, h, err := ToolDefinition(json.RawMessage(changed)); err != nil || h == ha {
			t.Errorf("a changed definition hashes the same (%v): %s", err, changed)
		}
	}
	for _, bad := range []string{`[]`, `{"description":"no name"}`, `{"name":""}`} {
		if _, _, _, err := ToolDefinition(json.RawMessage(bad)); err == nil {
			t.Errorf("ToolDefinition(%s) did not fail", bad)
		}
	}
}

func TestDiffDefinitionsNamesTheChangedFields(t *testing.T) {
	_, a, _, _ := ToolDefinition(json.RawMessage(`{"name":"t","description":"old","inputSchema":{"type":"object"}}`))
	_, b, _, _ := ToolDefinition(json.RawMessage(`{"name":"t","description":"new","inputSchema":{"type":"object"},"annotations":{"destructiveHint":true}}`))
	d := DiffDefinitions(a, b)
	if len(d) != 2 || d[0].Field != "description" || string(d[0].Pending) != `"new"` || d[1].Field != "annotations" || d[1].Pinned != nil {
		t.Fatalf("diff: %+v", d)
	}
}

// Keys hold any tool name, one token after the server's.
func TestPinKey(t *testing.T) {
	for _, tool := range []string{"echo", "a.b", "with space", "ünï/côde*>"} {
		k := PinKey("srv", tool)
		if !validKey(k) || k[:4] != "srv." {
			t.Fatalf("PinKey(srv, %q) = %q", tool, k)
		}
		name, err := base64.RawURLEncoding.DecodeString(k[4:])
		if err != nil || string(name) != tool {
			t.Fatalf("PinKey(srv, %q) = %q does not decode back", tool, k)
		}
	}
	if PinKey("a.b", "t") != "" || PinKey("srv", "") != "" {
		t.Fatal("PinKey accepted a server that is no token, or an empty tool")
	}
}

// A worker of one server writes, follows and announces that server's pins
// only; the registry owns the bucket.
func TestWorkerWritesOnlyItsServersPins(t *testing.T) {
	p := RolePermissions("w", []Role{RoleWorkers}, []string{"gh"})
	pub, sub := map[string]bool{}, map[string]bool{}
	for _, s := range p.Publish.Allow {
		pub[s] = true
	}
	for _, s := range p.Subscribe.Allow {
		sub[s] = true
	}
	for s, want := range map[string]bool{
		KVSubject(BucketToolPins, "gh.*"): true, PinEventSubject("gh"): true, jsMsgGet(KVStream(BucketToolPins)): true,
		KVSubject(BucketToolPins, ">"): false, KVSubject(BucketToolPins, "other.*"): false, PinEventSubject("*"): false,
		jsStreamCreate(KVStream(BucketToolPins)): false, jsConsumer("CREATE", KVStream(BucketToolPins)): false,
	} {
		if pub[s] != want {
			t.Errorf("a worker of gh: publish %s allowed %t, want %t", s, pub[s], want)
		}
	}
	if !sub[KVSubject(BucketToolPins, "gh.*")] || sub[KVSubject(BucketToolPins, ">")] {
		t.Errorf("a worker of gh follows gh's pins only: %v", p.Subscribe.Allow)
	}
	r := RolePermissions("r", []Role{RoleRegistry}, nil)
	owns := map[string]bool{}
	for _, s := range r.Publish.Allow {
		owns[s] = true
	}
	if !owns[jsStreamCreate(KVStream(BucketToolPins))] || !owns[KVSubject(BucketToolPins, ">")] || !owns[PinEventSubject("*")] {
		t.Errorf("the registry does not own the pins bucket: %v", r.Publish.Allow)
	}
	for _, role := range []Role{RoleRouter, RoleIngress, RoleUsage} {
		for _, s := range RolePermissions("x", []Role{role}, nil).Publish.Allow {
			if s == KVSubject(BucketToolPins, ">") || s == PinEventSubject("*") {
				t.Errorf("role %s may publish %s", role, s)
			}
		}
	}
}

// What the pin API takes is bounded before it becomes a key or a subject.
func TestPinRefBounds(t *testing.T) {
	long := strings.Repeat("t", MaxPinToolLen+1)
	for name, c := range map[string]struct {
		r        PinRef
		withTool bool
		ok       bool
	}{
		"list":           {PinRef{Server: "gh"}, false, true},
		"one":            {PinRef{Server: "gh", Tool: "create issue", Hash: "ab12"}, true, true},
		"bad server":     {PinRef{Server: "g.h"}, false, false},
		"no tool":        {PinRef{Server: "gh"}, true, false},
		"long tool":      {PinRef{Server: "gh", Tool: long}, true, false},
		"tool with CRLF": {PinRef{Server: "gh", Tool: "a\r\nb"}, true, false},
		"tool on a list": {PinRef{Server: "gh", Tool: "x"}, false, false},
		"long hash":      {PinRef{Server: "gh", Tool: "x", Hash: strings.Repeat("a", 129)}, true, false},
	} {
		if e := c.r.Validate(c.withTool); (e == nil) != c.ok {
			t.Errorf("%s: %v", name, e)
		}
	}
	if PinKey("gh", long) != "" {
		t.Error("an overlong tool name got a key")
	}
}

// An ingress serving the admin UI follows the pin events (its live feed's
// "pins"), and publishes none; one not serving the UI does not follow them.
func TestIngressUIFollowsPinEvents(t *testing.T) {
	follows := func(routes []RouteFamily) bool {
		p := BusUser{User: "i", Roles: []Role{RoleIngress}, Routes: routes}.Permissions()
		return slices.Contains(p.Subscribe.Allow, SubjectPinEventsAll) && !slices.Contains(p.Publish.Allow, SubjectPinEventsAll)
	}
	if !follows(nil) || !follows([]RouteFamily{RoutesUI}) {
		t.Error("an ingress serving the UI does not follow the pin events")
	}
	if follows([]RouteFamily{RoutesMCP}) {
		t.Error("an ingress serving MCP only follows the pin events")
	}
}
