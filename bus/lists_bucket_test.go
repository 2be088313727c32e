package bus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A shared list is keyed by server and kind, read back with the ttlMs
// left, and refused when stale, oversized or claiming more than an hour.
func TestListEntries(t *testing.T) {
	if got := ListKey("gh", MethodResourcesTemplatesList); got != "gh.templates" {
		t.Fatalf("ListKey = %q", got)
	}
	if ListKey("gh", MethodToolsCall) != "" || ListKey("a.b", MethodToolsList) != "" {
		t.Fatal("a key for what is not a list of a server")
	}
	now := time.UnixMilli(1_800_000_000_000)
	v, ok := NewListEntry(json.RawMessage(`{"tools":[],"ttlMs":60000}`), time.Minute, now)
	if !ok {
		t.Fatal("not encoded")
	}
	got, ok := ReadListEntry(v, now.Add(15*time.Second))
	if !ok || string(got) != `{"tools":[],"ttlMs":45000}` {
		t.Fatalf("read 15 s later: %s %v", got, ok)
	}
	if _, ok := ReadListEntry(v, now.Add(time.Minute)); ok {
		t.Fatal("a stale entry was read")
	}
	long, _ := NewListEntry(json.RawMessage(`{"tools":[]}`), 24*time.Hour, now)
	if _, ok := ReadListEntry(long, now.Add(59*time.Minute)); !ok {
		t.Fatal("a day's ttl is kept an hour")
	}
	if _, ok := ReadListEntry(long, now.Add(61*time.Minute)); ok {
		t.Fatal("an entry outlived the bucket's hour")
	}
	forged := []byte(`{"until":` + "9999999999999" + `,"result":{"tools":[]}}`)
	if _, ok := ReadListEntry(forged, now); ok {
		t.Fatal("an entry claiming years of freshness was read")
	}
	if _, ok := ReadListEntry([]byte(`{"until":1800000060000,"result":[1]}`), now); ok {
		t.Fatal("a result that is not an object was read")
	}
	if _, ok := NewListEntry(json.RawMessage(`{"tools":["`+strings.Repeat("x", MaxListEntry)+`"]}`), time.Minute, now); ok {
		t.Fatal("an entry over MaxListEntry was encoded")
	}
}
