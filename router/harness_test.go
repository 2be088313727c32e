package router

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// fakeWorker stands in for a tool worker: a micro service on the server's
// rpc and info subjects answering from fixed lists, with paging, delays and
// failures as a test needs, recording what it was sent.
type fakeWorker struct {
	name      string
	tools     []string
	prompts   []string
	resources []string
	templates []string
	caps      string
	pageSize  int           // 0: everything in one page
	listDelay time.Duration // before answering any list
	hang      bool          // never answer lists
	fail      map[string]string

	mu    sync.Mutex
	seen  []*bus.Message
	heads []nats.Header
	lists map[string]int
}

func (w *fakeWorker) record(m *bus.Message, h nats.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, m)
	w.heads = append(w.heads, h)
	if w.lists == nil {
		w.lists = map[string]int{}
	}
	if len(m.Method) > 5 && m.Method[len(m.Method)-5:] == "/list" {
		w.lists[m.Method]++
	}
}

func (w *fakeWorker) listCount(method string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lists[method]
}

// last returns the last message with method.
func (w *fakeWorker) last(method string) (*bus.Message, nats.Header) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.seen) - 1; i >= 0; i-- {
		if w.seen[i].Method == method {
			return w.seen[i], w.heads[i]
		}
	}
	return nil, nil
}

func (w *fakeWorker) start(t *testing.T, nc *nats.Conn) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: "fake-worker", Version: "0.0.1", QueueGroup: "fake." + w.name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	svc.AddEndpoint("info", micro.HandlerFunc(func(req micro.Request) {
		caps := w.caps
		if caps == "" {
			caps = `{"tools":{}}`
		}
		req.Respond([]byte(`{"protocolVersion":"2025-06-18","capabilities":` + caps + `,"serverInfo":{"name":"` + w.name + `","version":"1"}}`))
	}), micro.WithEndpointSubject(bus.ToolInfo(w.name)))
	svc.AddEndpoint("rpc", micro.HandlerFunc(func(req micro.Request) {
		msg, perr := bus.ParseMessage(req.Data())
		if perr != nil {
			bus.RespondError(req, perr)
			return
		}
		w.record(msg, nats.Header(req.Headers()))
		go w.answer(bus.NewReply(nc, req), msg)
	}), micro.WithEndpointSubject(bus.ToolRPC(w.name)))
}

func (w *fakeWorker) setFail(method, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = map[string]string{method: reason}
}

func (w *fakeWorker) answer(req bus.Reply, msg *bus.Message) {
	w.mu.Lock()
	reason, ok := w.fail[msg.Method]
	w.mu.Unlock()
	if ok {
		req.Respond(bus.RawErrorResponse(msg.ID, json.RawMessage(`{"code":-32603,"message":`+strconv.Quote(reason)+`}`)))
		return
	}
	list := func(items []string, field string, item func(string) any) {
		if w.hang {
			return
		}
		time.Sleep(w.listDelay) // real time: the scenario is a worker slow to list
		var p struct {
			Cursor string `json:"cursor"`
		}
		json.Unmarshal(msg.Params, &p)
		start := 0
		if p.Cursor != "" {
			n, err := strconv.Atoi(p.Cursor)
			if err != nil || n < 0 || n > len(items) {
				req.Respond(bus.RawErrorResponse(msg.ID, json.RawMessage(`{"code":-32602,"message":"bad cursor"}`)))
				return
			}
			start = n
		}
		end := len(items)
		if w.pageSize > 0 && start+w.pageSize < end {
			end = start + w.pageSize
		}
		out := []any{}
		for _, it := range items[start:end] {
			out = append(out, item(it))
		}
		res := map[string]any{field: out}
		if end < len(items) {
			res["nextCursor"] = strconv.Itoa(end)
		}
		b := marshal(res) // no HTML escaping, as most upstreams
		req.Respond(bus.ResultResponse(msg.ID, b))
	}
	named := func(n string) any {
		return map[string]any{"name": n, "description": w.name + " " + n + " <&>", "inputSchema": map[string]any{"type": "object"}}
	}
	switch msg.Method {
	case "tools/list":
		list(w.tools, "tools", named)
	case "prompts/list":
		if w.prompts == nil {
			req.Respond(bus.RawErrorResponse(msg.ID, json.RawMessage(`{"code":-32601,"message":"method not found"}`)))
			return
		}
		list(w.prompts, "prompts", func(n string) any { return map[string]any{"name": n} })
	case "resources/list":
		list(w.resources, "resources", func(u string) any { return map[string]any{"uri": u, "name": u} })
	case "resources/templates/list":
		list(w.templates, "resourceTemplates", func(u string) any { return map[string]any{"uriTemplate": u, "name": u} })
	default:
		// Calls answer with who got them and the params they got.
		b, _ := json.Marshal(map[string]any{"server": w.name, "method": msg.Method, "params": msg.Params})
		req.Respond(bus.ResultResponse(msg.ID, b))
	}
}

// harness is a router on a real embedded NATS server with fake workers.
type harness struct {
	t     *testing.T
	nc    *nats.Conn
	logs  *bustest.Buffer
	cache *servercache.Cache
}

func startHarness(t *testing.T, o Options, specs []bus.ServerSpec, workers ...*fakeWorker) *harness {
	t.Helper()
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	cache := bustest.ServerCache(t, ns, specs...)
	logs := &bustest.Buffer{}
	o.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rc := bustest.Conn(t, ns)
	svc, err := Start(rc, cache, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	wc := bustest.Conn(t, ns)
	for _, w := range workers {
		w.start(t, wc)
	}
	wc.Flush()
	rc.Flush()
	return &harness{t: t, nc: nc, logs: logs, cache: cache}
}

// servers makes internal server specs named as given.
func servers(names ...string) []bus.ServerSpec {
	out := make([]bus.ServerSpec, len(names))
	for i, n := range names {
		out[i] = bus.ServerSpec{Name: n}
	}
	return out
}

func internal() bus.Envelope {
	return bus.Envelope{RequestID: "req-1", IPClass: bus.Internal, Caller: bus.Identity{KeyID: "master", Permissions: bus.Permissions{AllServers: true}}}
}

// send posts one JSON-RPC message to the router and returns the parsed
// answer, or the gateway error.
func (h *harness) send(env bus.Envelope, body string) (*bus.Message, *bus.Error) {
	h.t.Helper()
	m := &nats.Msg{Subject: bus.SubjectRouterRPC, Data: []byte(body), Header: env.Header()}
	reply, err := h.nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		h.t.Fatalf("router request: %v", err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	if len(reply.Data) == 0 {
		return nil, nil
	}
	msg, perr := bus.ParseMessage(reply.Data)
	if perr != nil {
		h.t.Fatalf("router answer %q: %v", reply.Data, perr)
	}
	return msg, nil
}

// result sends body and decodes a successful result into v.
func (h *harness) result(env bus.Envelope, body string, v any) {
	h.t.Helper()
	msg, e := h.send(env, body)
	if e != nil {
		h.t.Fatalf("%s: gateway error %s: %s", body, e.Kind.Code, e.Message)
	}
	if len(msg.Error) > 0 {
		h.t.Fatalf("%s: JSON-RPC error %s", body, msg.Error)
	}
	if err := json.Unmarshal(msg.Result, v); err != nil {
		h.t.Fatalf("%s: result %s: %v", body, msg.Result, err)
	}
}

// listed is a decoded aggregated list page.
type listed struct {
	Tools []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tools"`
	Prompts []struct {
		Name string `json:"name"`
	} `json:"prompts"`
	Resources []struct {
		URI string `json:"uri"`
	} `json:"resources"`
	NextCursor string                          `json:"nextCursor"`
	Meta       map[string][]bus.PartialFailure `json:"_meta"`
}

// called is what the fake workers answer to a call.
type called struct {
	Server string          `json:"server"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

func request(id int, method, params string) string {
	if params == "" {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, id, method)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
}
