package toolworkers

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// A caller without a session is bucketed by its call: an input_required
// retry (the same params plus inputResponses and requestState, a new
// request id) lands where the call did, so on the upstream that asked;
// different calls spread over both variants; a session keeps its own.
func TestCanaryKeyKeepsRetriesOnTheirVariant(t *testing.T) {
	call := func(id, params string) (bus.Envelope, *bus.Message) {
		env := bus.Envelope{RequestID: id, Caller: bus.Identity{KeyID: "k1"}, ProtocolVersion: bus.FirstModernVersion}
		return env, &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(`1`), Method: bus.MethodToolsCall, Params: json.RawMessage(params)}
	}
	first, m1 := call("r1", `{"name":"book","arguments":{"day":"mon"}}`)
	retry, m2 := call("r2", `{"name":"book","arguments":{"day":"mon"},"inputResponses":{"a":{"action":"accept"}},"requestState":"xyz"}`)
	if a, b := canaryKey(first, m1), canaryKey(retry, m2); a != b {
		t.Fatalf("the retry is bucketed by %q, the call by %q", b, a)
	}
	other := retry
	other.Caller.KeyID = "k2"
	if canaryKey(other, m2) == canaryKey(retry, m2) {
		t.Fatal("another key's call is bucketed with this key's")
	}
	buckets := map[bool]int{}
	for i := range 64 {
		env, m := call(fmt.Sprint("r", i), fmt.Sprintf(`{"name":"book","arguments":{"day":%d}}`, i))
		buckets[CanaryBucket("c", canaryKey(env, m)) < 50]++
	}
	if buckets[true] == 0 || buckets[false] == 0 {
		t.Fatalf("64 different calls at 50%%: %v, want both variants", buckets)
	}
	sess, m := call("r9", `{"name":"book"}`)
	sess.Session = "s1"
	if canaryKey(sess, m) != "s1" {
		t.Fatal("a session's call is not bucketed by its session")
	}
	list, lm := call("r10", `{}`)
	lm.Method = bus.MethodToolsList
	if canaryKey(list, lm) != "r10" {
		t.Fatal("a list is not bucketed by its request id")
	}
}
