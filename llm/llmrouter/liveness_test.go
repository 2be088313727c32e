package llmrouter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/llm/llmworkers"
	"github.com/nats-io/nats.go"
)

// A deployment's worker that dies while it runs a request is found out by
// liveness (no heartbeat), and the request goes to another replica of the
// deployment's queue group, which answers: the caller sees an answer, not
// a wait for the whole timeout.
func TestALostWorkerIsPassedOver(t *testing.T) {
	ns := bustest.Server(t)
	var calls atomic.Int32
	holding, release := make(chan struct{}), make(chan struct{})
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 1 {
			close(holding) // the first worker's call: held until the test ends
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"from the second replica"},"finish_reason":"stop"}]}`)
	}))
	t.Cleanup(provider.Close)
	t.Cleanup(func() { close(release) })
	models := []config.Model{{Name: "g", ID: "d1", Provider: "openai", Upstream: "m", APIBase: provider.URL}}

	nc := bustest.Conn(t, ns)
	admitAll(t, nc)
	svc, err := Start(nc, models, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	first := bustest.Conn(t, ns)
	a, err := llmworkers.Start(first, models, llmworkers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Stop() }()
	if err := first.Flush(); err != nil { // its subscription is on the server before the request
		t.Fatal(err)
	}

	answer := make(chan *nats.Msg, 1)
	go func() {
		env := bus.Envelope{RequestID: "r1", Caller: bus.Identity{KeyID: "master", Admin: true, Permissions: bus.AllowAll()}, IPClass: bus.Internal}
		resp, err := nc.RequestMsg(&nats.Msg{Subject: bus.SubjectLLMChat, Data: []byte(`{"model":"g","messages":[{"role":"user","content":"hi"}]}`), Header: env.Header()}, time.Minute)
		if err != nil {
			t.Error(err)
		}
		answer <- resp
	}()
	select {
	case <-holding:
	case resp := <-answer:
		t.Fatalf("answered before the provider held the call: %v %s", bus.ReplyError(resp), resp.Data)
	}
	second := bustest.Conn(t, ns)
	b, err := llmworkers.Start(second, models, llmworkers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Stop() }()
	if err := second.Flush(); err != nil {
		t.Fatal(err)
	}
	first.Close() // the first replica dies: no heartbeat, no answer

	resp := <-answer
	if e := bus.ReplyError(resp); e != nil || calls.Load() != 2 {
		t.Fatalf("after the worker died: %v %s (%d provider calls)", e, resp.Data, calls.Load())
	}
}
