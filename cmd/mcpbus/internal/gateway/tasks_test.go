package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go/jetstream"
)

// jobsUpstream is a go-sdk server whose tool "slow" runs until the test
// releases it (or its call is cancelled), and "quick" answers at once.
type jobsUpstream struct {
	url       string
	started   chan string   // the argument of each slow call that began
	release   chan string   // each value ends one slow call with it as the answer
	cancelled chan struct{} // a slow call's context ended
}

func newJobsUpstream(t *testing.T) *jobsUpstream {
	t.Helper()
	u := &jobsUpstream{started: make(chan string, 16), release: make(chan string, 16), cancelled: make(chan struct{}, 16)}
	srv := mcp.NewServer(&mcp.Implementation{Name: "jobs", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "slow", Description: "Runs until released.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var args struct{ Job string }
			_ = json.Unmarshal(req.Params.Arguments, &args)
			u.started <- args.Job
			select {
			case answer := <-u.release:
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: args.Job + ": " + answer}}}, nil
			case <-ctx.Done():
				u.cancelled <- struct{}{}
				return nil, ctx.Err()
			}
		})
	srv.AddTool(&mcp.Tool{Name: "quick", Description: "Answers at once.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "quick"}}}, nil
		})
	u.url = serveMCP(t, srv, nil)
	return u
}

// waitStarted waits for a slow call to begin upstream.
func (u *jobsUpstream) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case job := <-u.started:
		return job
	case <-time.After(30 * time.Second):
		t.Fatal("the slow call never reached the upstream")
		return ""
	}
}

// tasksGateway runs a gateway whose server "jobs" lets "slow" run as a task.
func tasksGateway(t *testing.T, extra string) (*testGateway, *jobsUpstream) {
	t.Helper()
	up := newJobsUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  jobs: {url: %q, tasks: [slow]%s}
`, master, up.url, extra), nil)
	return g, up
}

// stoppableIngress runs one more ingress on g's NATS server, as `mcpbus
// ingress --nats ...` would, and returns its URL and how to stop it (its
// listener, its open requests and its bus connection all end).
func stoppableIngress(t *testing.T, g *testGateway) (string, func()) {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleIngress)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	servers, err := servercache.Follow(ctx, nc, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ing := ingress.New(ingress.Options{NC: nc, Log: slog.New(slog.NewTextHandler(g.logs, nil)), InternalRanges: config.DefaultInternalIPRanges(),
		Servers: servers, JetStream: js, ListenAddr: ln.Addr().String()})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ing.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = srv.Close()
		ing.Close()
		cancel()
		nc.Close()
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

const taskInitBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"tasks","version":"1"}}}`

// taskSession opens a 2025-11-25 session on url and returns its headers and
// the capabilities the gateway declared.
func taskSession(t *testing.T, url string, h http.Header) (http.Header, json.RawMessage) {
	t.Helper()
	r := post(t, url, h, taskInitBody)
	var res struct{ Capabilities json.RawMessage }
	if r.status != http.StatusOK || r.header.Get("Mcp-Session-Id") == "" || json.Unmarshal(r.result, &res) != nil {
		t.Fatalf("initialize: HTTP %d: %s", r.status, r.body)
	}
	out := h.Clone()
	out.Set("Mcp-Session-Id", r.header.Get("Mcp-Session-Id"))
	out.Set("Mcp-Protocol-Version", "2025-11-25")
	return out, res.Capabilities
}

// taskView is a Task as tasks/get answers it.
type taskView struct {
	TaskID        string `json:"taskId"`
	Status        string `json:"status"`
	StatusMessage string `json:"statusMessage"`
	CreatedAt     string `json:"createdAt"`
	LastUpdatedAt string `json:"lastUpdatedAt"`
	TTL           *int64 `json:"ttl"`
	PollInterval  int64  `json:"pollInterval"`
}

// startTask calls tool as a task and returns the task the gateway created.
func startTask(t *testing.T, url string, h http.Header, tool, job string) taskView {
	t.Helper()
	r := post(t, url, h, rpc("tools/call", 7, fmt.Sprintf(`{"name":%q,"arguments":{"job":%q},"task":{"ttl":60000}}`, tool, job)))
	var res struct{ Task taskView }
	if r.rpcErr.Code != 0 || json.Unmarshal(r.result, &res) != nil || res.Task.TaskID == "" {
		t.Fatalf("tools/call as a task: HTTP %d %s", r.status, r.body)
	}
	return res.Task
}

func getTask(t *testing.T, url string, h http.Header, id string) (taskView, rawResponse) {
	t.Helper()
	r := post(t, url, h, rpc("tasks/get", 8, fmt.Sprintf(`{"taskId":%q}`, id)))
	var v taskView
	_ = json.Unmarshal(r.result, &v)
	return v, r
}

// The proof: a client runs a call as a task through one ingress,
// which answers the task at once while the upstream still works on it; that
// ingress is then stopped (its bus connection and every open request
// with it), the call finishes, and a new session on a new ingress fetches
// the status and the result from JetStream.
func TestTaskSurvivesTheIngressBeingStopped(t *testing.T) {
	g, up := tasksGateway(t, "")
	first, stopFirst := stoppableIngress(t, g)
	h, caps := taskSession(t, first+"/mcp/jobs", bearer(master))
	var c struct {
		Tasks struct {
			List, Cancel json.RawMessage
			Requests     struct {
				Tools struct{ Call json.RawMessage }
			}
		}
	}
	if json.Unmarshal(caps, &c) != nil || c.Tasks.List == nil || c.Tasks.Cancel == nil || c.Tasks.Requests.Tools.Call == nil {
		t.Fatalf("initialize does not declare tasks: %s", caps)
	}
	r := post(t, first+"/mcp/jobs", h, rpc("tools/list", 2, ""))
	var tl struct {
		Tools []struct {
			Name      string
			Execution *struct{ TaskSupport string }
		}
	}
	_ = json.Unmarshal(r.result, &tl)
	for _, tool := range tl.Tools {
		if want := tool.Name == "slow"; (tool.Execution != nil && tool.Execution.TaskSupport == "optional") != want {
			t.Fatalf("tools/list: %s taskSupport %+v (only slow may run as a task): %s", tool.Name, tool.Execution, r.result)
		}
	}

	task := startTask(t, first+"/mcp/jobs", h, "slow", "report")
	// The answer came while the upstream still holds the call.
	if job := up.waitStarted(t); job != "report" || task.Status != bus.TaskWorking || task.TTL == nil || *task.TTL != 60000 ||
		task.PollInterval <= 0 || task.CreatedAt == "" || task.LastUpdatedAt == "" {
		t.Fatalf("the task: %+v (upstream job %q)", task, job)
	}
	if v, r := getTask(t, first+"/mcp/jobs", h, task.TaskID); v.Status != bus.TaskWorking {
		t.Fatalf("tasks/get while it runs: %s", r.body)
	}

	stopFirst()
	up.release <- "finished after the ingress stopped"

	second, _ := stoppableIngress(t, g)
	h2, _ := taskSession(t, second+"/mcp/jobs", bearer(master))
	bustest.Eventually(t, 30*time.Second, "the task completes", func() error {
		v, r := getTask(t, second+"/mcp/jobs", h2, task.TaskID)
		return bustest.Want("status", v.Status+string(r.rpcErr.Message), bus.TaskCompleted)
	})
	r = post(t, second+"/mcp/jobs", h2, rpc("tasks/result", 9, fmt.Sprintf(`{"taskId":%q}`, task.TaskID)))
	var res struct {
		Content []struct{ Text string }
		Meta    map[string]struct{ TaskID string } `json:"_meta"`
	}
	if json.Unmarshal(r.result, &res) != nil || len(res.Content) != 1 || res.Content[0].Text != "report: finished after the ingress stopped" ||
		res.Meta[bus.MetaRelatedTask].TaskID != task.TaskID {
		t.Fatalf("tasks/result: %s", r.body)
	}
	// The gateway's own ingress (a third replica) lists it too.
	h3, _ := taskSession(t, g.URL()+"/mcp/jobs", bearer(master))
	r = post(t, g.URL()+"/mcp/jobs", h3, rpc("tasks/list", 10, `{}`))
	var list struct{ Tasks []taskView }
	if json.Unmarshal(r.result, &list) != nil || len(list.Tasks) != 1 || list.Tasks[0].TaskID != task.TaskID || list.Tasks[0].Status != bus.TaskCompleted {
		t.Fatalf("tasks/list: %s", r.body)
	}
}
