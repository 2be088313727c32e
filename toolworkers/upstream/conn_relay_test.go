package upstream

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// On a connection carrying one session for everything (legacy SSE, stdio),
// what the upstream sends besides responses and progress is attributed as far
// as the connection allows: to the one call in flight if there is exactly
// one, else to the session (a private session's client; a shared session
// refuses). Session-wide notifications always go to the session.
func TestPeerServerRequestAttribution(t *testing.T) {
	c, d := newPeerClient(t)
	sink := &eventSink{answers: func(m *bus.Message) []byte { return bus.ResultResponse(m.ID, json.RawMessage(`{"from":"session"}`)) }}
	c.events = sink
	ctx := ccCtx(t, 10*time.Second)
	go c.Info(ctx)
	p := <-d.peers
	p.handshake(t)

	var mu sync.Mutex
	var toA []string
	relayA := relayTo(func(method string, _ json.RawMessage) { mu.Lock(); toA = append(toA, method); mu.Unlock() })
	relayA.answer = func(m *bus.Message) []byte { return bus.ResultResponse(m.ID, json.RawMessage(`{"from":"call A"}`)) }
	doneA := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"a"}`), relayA)
		doneA <- err
	}()
	reqA, _ := p.expect(t, "tools/call")
	answerOf := func(id string) string {
		t.Helper()
		for {
			m := p.next(t)
			if m.IsResponse() && string(m.ID) == id {
				return string(m.Result) + string(m.Error)
			}
		}
	}
	// One call in flight: its request and log message are the call's.
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}`)
	p.send(t, `{"jsonrpc":"2.0","id":50,"method":"sampling/createMessage","params":{}}`)
	if got := answerOf("50"); got != `{"from":"call A"}` {
		t.Fatalf("request with one call in flight answered %s", got)
	}
	// Two calls in flight: nobody can tell whose it is; the session answers.
	doneB := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"b"}`), relayTo(func(string, json.RawMessage) {}))
		doneB <- err
	}()
	reqB, _ := p.expect(t, "tools/call")
	p.send(t, `{"jsonrpc":"2.0","id":51,"method":"elicitation/create","params":{}}`)
	if got := answerOf("51"); got != `{"from":"session"}` {
		t.Fatalf("request with two calls in flight answered %s", got)
	}
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"y"}}`)
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}`)
	p.send(t, `{"jsonrpc":"2.0","id":`+string(reqA.ID)+`,"result":{}}`)
	p.send(t, `{"jsonrpc":"2.0","id":`+string(reqB.ID)+`,"result":{}}`)
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(toA, ",") != "notifications/message" {
		t.Errorf("call A got %v, want its one log message", toA)
	}
	bustest.Eventually(t, 30*time.Second, "the session got its notifications", func() error {
		if got := sink.noted(); len(got) != 2 {
			return fmt.Errorf("the session got %v, want 2 notifications", got)
		}
		return nil
	})
	if got := sink.noted(); strings.Join(got, ",") != "notifications/message,notifications/tools/list_changed" {
		t.Errorf("session got %v", got)
	}
}
