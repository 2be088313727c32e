package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// The pairs below are what @a2a-js/sdk 1.3.0 sends for the same exchange on
// each wire (its 1.0 server, and the same server with its 0.3 compat layer).
var pairs = []struct {
	name       string
	method03   string
	v03, v10   string
	kind       string // "params", "result" or "event"
	roundTrips bool
}{
	{"send params", "message/send",
		`{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}],"contextId":"c1"},"configuration":{"blocking":false,"acceptedOutputModes":["text"],"historyLength":2}}`,
		`{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}],"contextId":"c1"},"configuration":{"returnImmediately":true,"acceptedOutputModes":["text"],"historyLength":2}}`,
		"params", true},
	{"file and data parts", "message/stream",
		`{"message":{"kind":"message","messageId":"m2","role":"user","parts":[{"kind":"file","file":{"uri":"https://x/y.png","mimeType":"image/png","name":"y.png"}},{"kind":"file","file":{"bytes":"aGk="}},{"kind":"data","data":{"a":1.50}}]},"configuration":{"blocking":true}}`,
		`{"message":{"messageId":"m2","role":"ROLE_USER","parts":[{"url":"https://x/y.png","mediaType":"image/png","filename":"y.png"},{"raw":"aGk="},{"data":{"a":1.50}}]},"configuration":{"returnImmediately":false}}`,
		"params", true},
	{"send result: a task", "message/send",
		`{"kind":"task","id":"t1","contextId":"c1","status":{"state":"completed"},"history":[{"kind":"message","messageId":"m3","role":"user","parts":[{"kind":"text","text":"hi"}],"contextId":"c1","taskId":"t1"}],"artifacts":[{"artifactId":"a1","parts":[{"kind":"text","text":"hello"}]}]}`,
		`{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"},"history":[{"messageId":"m3","role":"ROLE_USER","parts":[{"text":"hi"}],"contextId":"c1","taskId":"t1"}],"artifacts":[{"artifactId":"a1","parts":[{"text":"hello"}]}]}}`,
		"result", true},
	{"send result: a message", "message/send",
		`{"kind":"message","messageId":"r1","role":"agent","parts":[{"kind":"text","text":"ok"}]}`,
		`{"message":{"messageId":"r1","role":"ROLE_AGENT","parts":[{"text":"ok"}]}}`,
		"result", true},
	{"get result", "tasks/get",
		`{"kind":"task","id":"t1","contextId":"c1","status":{"state":"input-required","message":{"kind":"message","messageId":"q","role":"agent","parts":[{"kind":"text","text":"which?"}]}}}`,
		`{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_INPUT_REQUIRED","message":{"messageId":"q","role":"ROLE_AGENT","parts":[{"text":"which?"}]}}}`,
		"result", true},
	{"cancel result", "tasks/cancel",
		`{"kind":"task","id":"t1","contextId":"c1","status":{"state":"canceled"}}`,
		`{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_CANCELED"}}`,
		"result", true},
	{"working", "",
		`{"kind":"status-update","taskId":"t2","contextId":"c2","status":{"state":"working"},"final":false}`,
		`{"statusUpdate":{"taskId":"t2","contextId":"c2","status":{"state":"TASK_STATE_WORKING"}}}`,
		"event", true},
	{"artifact", "",
		`{"kind":"artifact-update","taskId":"t2","contextId":"c2","artifact":{"artifactId":"a1","parts":[{"kind":"text","text":"hello"}]},"append":false,"lastChunk":true}`,
		`{"artifactUpdate":{"taskId":"t2","contextId":"c2","artifact":{"artifactId":"a1","parts":[{"text":"hello"}]},"append":false,"lastChunk":true}}`,
		"event", true},
	{"completed ends a 0.3 stream", "",
		`{"kind":"status-update","taskId":"t2","contextId":"c2","status":{"state":"completed"},"final":true}`,
		`{"statusUpdate":{"taskId":"t2","contextId":"c2","status":{"state":"TASK_STATE_COMPLETED"}}}`,
		"event", true},
}

func TestBothWays(t *testing.T) {
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			method10, err := Method(p.method03, bus.A2AV03, bus.A2AV10)
			if p.method03 != "" && err != nil {
				t.Fatal(err)
			}
			tr := func(in, from, to, method string) json.RawMessage {
				var out json.RawMessage
				var err error
				switch p.kind {
				case "params":
					out, err = Params(method, json.RawMessage(in), from, to)
				case "result":
					out, err = Result(method, json.RawMessage(in), from, to)
				default:
					out, err = Event(json.RawMessage(in), from, to)
				}
				if err != nil {
					t.Fatalf("%s -> %s: %v", from, to, err)
				}
				return out
			}
			same(t, "0.3 -> 1.0", tr(p.v03, bus.A2AV03, bus.A2AV10, p.method03), p.v10)
			same(t, "1.0 -> 0.3", tr(p.v10, bus.A2AV10, bus.A2AV03, method10), p.v03)
		})
	}
}

func same(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON", what, got)
	}
	_ = json.Unmarshal([]byte(want), &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
}

// Method names map both ways; a method without a translation is named as
// such, and the same wire passes everything through untouched.
func TestMethods(t *testing.T) {
	for m03, m10 := range methods03to10 {
		if got, _ := Method(m03, bus.A2AV03, bus.A2AV10); got != m10 {
			t.Errorf("%s -> %s, want %s", m03, got, m10)
		}
		if got, _ := Method(m10, bus.A2AV10, bus.A2AV03); got != m03 {
			t.Errorf("%s -> %s, want %s", m10, got, m03)
		}
	}
	if _, err := Method("tasks/pushNotificationConfig/set", bus.A2AV03, bus.A2AV10); !errors.Is(err, ErrUntranslated) {
		t.Errorf("push config: %v, want ErrUntranslated", err)
	}
	if _, err := Method("ListTasks", bus.A2AV10, bus.A2AV03); !errors.Is(err, ErrUntranslated) {
		t.Errorf("ListTasks: %v, want ErrUntranslated", err)
	}
	// 1.0 blocks unless told not to; a 0.3 agent is told to block.
	got, _ := Params("SendMessage", json.RawMessage(`{"message":{"messageId":"m","role":"ROLE_USER","parts":[]}}`), bus.A2AV10, bus.A2AV03)
	same(t, "a 1.0 send without configuration", got, `{"message":{"kind":"message","messageId":"m","role":"user","parts":[]},"configuration":{"blocking":true}}`)
	raw := json.RawMessage(`{"whatever": [1, 2.50]}`)
	if got, _ := Params("anything", raw, bus.A2AV10, bus.A2AV10); string(got) != string(raw) {
		t.Errorf("same wire changed params: %s", got)
	}
	if _, err := Result("message/send", json.RawMessage(`[1]`), bus.A2AV03, bus.A2AV10); err == nil {
		t.Error("a result that is not an object translated")
	}
}
