package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
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
	ended := make(chan struct{}) // the test ended: a call still held ends
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
			case <-ended:
				return nil, context.Canceled
			}
		})
	srv.AddTool(&mcp.Tool{Name: "quick", Description: "Answers at once.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "quick"}}}, nil
		})
	u.url = serveMCP(t, srv, nil)
	t.Cleanup(func() { close(ended) }) // before serveMCP's, which waits for the calls
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

// A task is its caller's alone: another key gets "task not found" for it
// on every task method, exactly as for an id that does not exist, and does
// not see it listed; the owner's tasks/result waits for the call to end.
func TestTaskIsOnlyItsCallers(t *testing.T) {
	g, up := tasksGateway(t, "")
	url := g.URL() + "/mcp/jobs"
	alice := generateKey(t, g.URL(), map[string]any{"key_alias": "alice"})
	bob := generateKey(t, g.URL(), map[string]any{"key_alias": "bob"})
	ha, _ := taskSession(t, url, bearer(alice))
	hb, _ := taskSession(t, url, bearer(bob))

	task := startTask(t, url, ha, "slow", "alice's")
	up.waitStarted(t)
	missing := bus.NewTaskID("jobs")
	for _, id := range []string{task.TaskID, missing} {
		for _, method := range []string{"tasks/get", "tasks/result", "tasks/cancel"} {
			r := post(t, url, hb, rpc(method, 11, fmt.Sprintf(`{"taskId":%q}`, id)))
			if r.rpcErr.Code != -32602 || !strings.Contains(r.rpcErr.Message, "task not found") {
				t.Fatalf("bob's %s of %s: %s", method, id, r.body)
			}
		}
	}
	if r := post(t, url, hb, rpc("tasks/list", 12, `{}`)); string(r.result) != `{"tasks":[]}` {
		t.Fatalf("bob's tasks/list: %s", r.body)
	}

	// Alice's tasks/result waits for the call, then answers its result.
	got := make(chan rawResponse, 1)
	go func() { got <- post(t, url, ha, rpc("tasks/result", 13, fmt.Sprintf(`{"taskId":%q}`, task.TaskID))) }()
	if v, r := getTask(t, url, ha, task.TaskID); v.Status != bus.TaskWorking {
		t.Fatalf("alice's tasks/get: %s", r.body)
	}
	up.release <- "done"
	select {
	case r := <-got:
		if !strings.Contains(string(r.result), `"text":"alice's: done"`) {
			t.Fatalf("alice's tasks/result: %s", r.body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tasks/result did not answer after the call ended")
	}
	// Bob still cannot see it, finished.
	if _, r := getTask(t, url, hb, task.TaskID); r.rpcErr.Code != -32602 {
		t.Fatalf("bob's tasks/get of the finished task: %s", r.body)
	}
}

// tasks/cancel stops the upstream call and leaves the task cancelled for
// good; a second cancel is refused as the spec says.
func TestTaskCancelStopsTheUpstreamCall(t *testing.T) {
	g, up := tasksGateway(t, "")
	url := g.URL() + "/mcp/jobs"
	h, _ := taskSession(t, url, bearer(master))
	task := startTask(t, url, h, "slow", "doomed")
	up.waitStarted(t)
	r := post(t, url, h, rpc("tasks/cancel", 14, fmt.Sprintf(`{"taskId":%q}`, task.TaskID)))
	var v taskView
	if json.Unmarshal(r.result, &v) != nil || v.Status != bus.TaskCancelled || v.TaskID != task.TaskID {
		t.Fatalf("tasks/cancel: %s", r.body)
	}
	select {
	case <-up.cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream call was not cancelled")
	}
	if v, r := getTask(t, url, h, task.TaskID); v.Status != bus.TaskCancelled {
		t.Fatalf("tasks/get after cancel: %s", r.body)
	}
	r = post(t, url, h, rpc("tasks/cancel", 15, fmt.Sprintf(`{"taskId":%q}`, task.TaskID)))
	if r.rpcErr.Code != -32602 || !strings.Contains(r.rpcErr.Message, "already in terminal status 'cancelled'") {
		t.Fatalf("second tasks/cancel: %s", r.body)
	}
	// The call's end did not overwrite it.
	bustest.Eventually(t, 10*time.Second, "the task stays cancelled", func() error {
		v, _ := getTask(t, url, h, task.TaskID)
		return bustest.Want("status", v.Status, bus.TaskCancelled)
	})
}

// Per server: only the listed tools run as tasks (another is refused as
// the spec says, -32601, naming the setting), and one caller may hold only
// task_max_open_per_key unfinished tasks; a finished one frees its place.
func TestTaskLimitsAndAllowedTools(t *testing.T) {
	g, up := tasksGateway(t, ", task_max_open_per_key: 2")
	url := g.URL() + "/mcp/jobs"
	h, _ := taskSession(t, url, bearer(master))

	r := post(t, url, h, rpc("tools/call", 16, `{"name":"quick","arguments":{},"task":{}}`))
	if r.rpcErr.Code != -32601 || !strings.Contains(r.rpcErr.Message, "mcp_servers.jobs.tasks") {
		t.Fatalf("quick as a task: %s", r.body)
	}
	if r := post(t, url, h, rpc("tools/call", 17, `{"name":"quick","arguments":{}}`)); !strings.Contains(string(r.result), `"quick"`) {
		t.Fatalf("quick, plainly: %s", r.body)
	}
	startTask(t, url, h, "slow", "one")
	startTask(t, url, h, "slow", "two")
	up.waitStarted(t)
	up.waitStarted(t)
	r = post(t, url, h, rpc("tools/call", 18, `{"name":"slow","arguments":{"job":"three"},"task":{}}`))
	if r.rpcErr.Data["mcpbus_code"] != bus.ErrTaskLimit.Code || !strings.Contains(r.rpcErr.Message, "task_max_open_per_key: 2") {
		t.Fatalf("a third open task: %s", r.body)
	}
	up.release <- "done"
	bustest.Eventually(t, 30*time.Second, "a finished task frees a place", func() error {
		r := post(t, url, h, rpc("tools/call", 19, `{"name":"slow","arguments":{"job":"three"},"task":{}}`))
		if r.rpcErr.Code != 0 {
			return fmt.Errorf("%s", r.body)
		}
		return nil
	})
	up.release <- "done"
	up.release <- "done"
}

// A task is kept for its retention, then it is gone.
func TestTaskRetentionExpires(t *testing.T) {
	g, up := tasksGateway(t, ", task_retention: 1s")
	url := g.URL() + "/mcp/jobs"
	h, _ := taskSession(t, url, bearer(master))
	task := startTask(t, url, h, "slow", "brief")
	if task.TTL == nil || *task.TTL != 1000 {
		t.Fatalf("ttl %v, want the retention (1000 ms) over the 60000 asked", task.TTL)
	}
	up.waitStarted(t)
	up.release <- "done"
	bustest.Eventually(t, 30*time.Second, "the task expires", func() error {
		_, r := getTask(t, url, h, task.TaskID)
		if r.rpcErr.Code != -32602 {
			return fmt.Errorf("tasks/get: %s", r.body)
		}
		return nil
	})
}

// The 2026-07-28 tasks extension: the gateway advertises it in
// server/discover; a client that declares it in its request's capabilities
// gets a task (resultType "task") for a tool the server lets run as one,
// polls tasks/get, which carries the result inline once it completes, and
// a client that does not declare it gets the plain result.
func TestTaskExtensionOfTheStatelessEra(t *testing.T) {
	up := newJobsUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_stateless_protocol: true}
mcp_servers:
  jobs: {url: %q, tasks: ["*"]}
`, master, up.url), nil)
	url := g.URL() + "/mcp/jobs"
	declared := func(body string) string {
		return strings.Replace(body, `"io.modelcontextprotocol/clientCapabilities":{}`,
			`"io.modelcontextprotocol/clientCapabilities":{"extensions":{"io.modelcontextprotocol/tasks":{}}}`, 1)
	}
	headers := func(method, name string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + master}, "Mcp-Protocol-Version": {bus.FirstModernVersion}, "Mcp-Method": {method}}
		if name != "" {
			h.Set("Mcp-Name", name)
		}
		return h
	}
	if r := modernPost(t, url, "server/discover", "", "{}"); !strings.Contains(string(r.body), `"extensions":{"io.modelcontextprotocol/tasks":{}}`) {
		t.Fatalf("server/discover does not advertise the extension: %s", r.body)
	}
	r := modernRaw(t, url, headers("tools/call", "slow"), declared(modernBody("tools/call", `{"name":"slow","arguments":{"job":"modern"}}`, `"2026-07-28"`)))
	var created struct {
		ResultType, TaskID, Status string
		TTLMs                      int64 `json:"ttlMs"`
		PollIntervalMs             int64 `json:"pollIntervalMs"`
	}
	var env struct{ Result json.RawMessage }
	if json.Unmarshal(r.body, &env) != nil || json.Unmarshal(env.Result, &created) != nil || created.ResultType != "task" ||
		created.Status != bus.TaskWorking || created.TaskID == "" || created.TTLMs != bus.DefaultTaskRetention.Milliseconds() || created.PollIntervalMs <= 0 {
		t.Fatalf("tools/call with the extension declared: HTTP %d %s", r.status, r.body)
	}
	up.waitStarted(t)
	up.release <- "done"
	bustest.Eventually(t, 30*time.Second, "tasks/get carries the result", func() error {
		r := modernRaw(t, url, headers("tasks/get", created.TaskID), declared(modernBody("tasks/get", fmt.Sprintf(`{"taskId":%q}`, created.TaskID), `"2026-07-28"`)))
		if !strings.Contains(string(r.body), `"status":"completed"`) || !strings.Contains(string(r.body), `"text":"modern: done"`) ||
			!strings.Contains(string(r.body), `"resultType":"complete"`) {
			return fmt.Errorf("HTTP %d %s", r.status, r.body)
		}
		return nil
	})
	// Without the extension declared: the plain result.
	go func() { up.release <- "plain" }()
	r = modernPost(t, url, "tools/call", "slow", `{"name":"slow","arguments":{"job":"undeclared"}}`)
	if !strings.Contains(string(r.body), `"text":"undeclared: plain"`) {
		t.Fatalf("tools/call without the extension: HTTP %d %s", r.status, r.body)
	}
}

// On an aggregated endpoint (/mcp, several servers) the tasks capability is
// declared when one server runs tasks, a prefixed tool runs as a task, and
// the task methods answer for it.
func TestTaskOnAnAggregatedEndpoint(t *testing.T) {
	up := newJobsUpstream(t)
	other := newJobsUpstream(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  jobs: {url: %q, tasks: [slow]}
  plain: {url: %q}
`, master, up.url, other.url), nil)
	url := g.URL() + "/mcp"
	h, caps := taskSession(t, url, bearer(master))
	if !strings.Contains(string(caps), `"tasks":{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}`) {
		t.Fatalf("aggregated initialize: %s", caps)
	}
	task := startTask(t, url, h, "jobs__slow", "aggregated")
	up.waitStarted(t)
	up.release <- "merged"
	bustest.Eventually(t, 30*time.Second, "the aggregated task completes", func() error {
		v, r := getTask(t, url, h, task.TaskID)
		return bustest.Want("status", v.Status+r.rpcErr.Message, bus.TaskCompleted)
	})
	r := post(t, url, h, rpc("tasks/result", 21, fmt.Sprintf(`{"taskId":%q}`, task.TaskID)))
	if !strings.Contains(string(r.result), `"text":"aggregated: merged"`) {
		t.Fatalf("tasks/result: %s", r.body)
	}
}

// A worker's bus user limited to one server writes that server's tasks
// only, and hears only that server's task cancellations: a worker of
// another server cannot forge or overwrite a task's result.
func TestTaskBucketWorkerWritesItsServersOnly(t *testing.T) {
	up := newJobsUpstream(t)
	worker := bus.BusUser{User: "test-tasks-worker", Password: bus.NewPassword(), Roles: []bus.Role{bus.RoleWorkers}, Servers: []string{"jobs"}}
	g := startGatewayOpts(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  jobs: {url: %q, tasks: ["*"]}
  other: {url: %q, tasks: ["*"]}
`, master, up.url, up.url), nil, func(o *Options) { o.BusUsers = append(o.BusUsers, worker) })
	nc := connectAs(t, g.Gateway, worker)
	js, _ := jetstreamFor(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketTasks)
	if err != nil {
		t.Fatalf("a worker opens the tasks bucket: %v", err)
	}
	owner := bus.TaskOwner(bus.Identity{KeyID: "k"})
	record := []byte(`{"status":"completed","result":{"content":[{"type":"text","text":"forged"}]}}`)
	if _, err := kv.Create(ctx, bus.TaskKey(owner, bus.NewTaskID("jobs")), record); err != nil {
		t.Fatalf("a worker of jobs writes a task of jobs: %v", err)
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	otherKey := bus.TaskKey(owner, bus.NewTaskID("other"))
	if _, err := kv.Create(short, otherKey, record); err == nil {
		t.Fatal("a worker of jobs wrote a task of server other")
	}
	admin, _ := jetstreamFor(testConn(t, g.Gateway))
	akv, err := admin.KeyValue(ctx, bus.BucketTasks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := akv.Get(ctx, otherKey); err != jetstream.ErrKeyNotFound {
		t.Fatalf("the task of other after the refused write: %v", err)
	}
	errs := make(chan error, 4)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	if _, err := nc.SubscribeSync(bus.TaskCancelSubject("other")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("subscribing to other's task cancellations: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("a worker of jobs may hear the task cancellations of server other")
	}
}
