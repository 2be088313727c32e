package fault

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The proof, with real processes: a client runs a slow call as a
// task through an ingress process, which is then SIGKILLed while the call
// runs; the call finishes on its worker regardless, and a new session on
// the restarted ingress gets the task's status and result from JetStream.
// Then the worker that ran it is SIGKILLed too: the result, in the bucket,
// is still answered.
func TestFaultTaskSurvivesTheIngressKilled(t *testing.T) {
	d := newDeployment(t, 3)
	d.service("core", "auth,registry,router")
	ing, url, _ := d.service("ingress", "ingress")
	w, _ := d.workerFor("jobs-worker", "jobs")
	c := &client{url: url + "/mcp/jobs", hc: http.Client{Timeout: 15 * time.Second}}
	waitFor(t, readyLimit, "a session on jobs", func() bool { return c.initialize().ok() })

	before := d.upstream.count()
	r := c.post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"seconds":3},"task":{"ttl":600000}}}`)
	var created struct {
		Task struct{ TaskID, Status string }
	}
	if !r.ok() || json.Unmarshal(r.result, &created) != nil || created.Task.Status != "working" || created.Task.TaskID == "" {
		t.Fatalf("tools/call as a task: %v %s", r, r.result)
	}
	waitFor(t, 30*time.Second, "the upstream runs the call", func() bool { return d.upstream.count() > before })
	ing.signal(syscall.SIGKILL)
	ing.restart()

	c2 := &client{url: url + "/mcp/jobs", hc: http.Client{Timeout: 15 * time.Second}}
	waitFor(t, readyLimit, "a session on the restarted ingress", func() bool { return c2.initialize().ok() })
	get := fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"tasks/get","params":{"taskId":%q}}`, created.Task.TaskID)
	var status string
	waitFor(t, 30*time.Second, "the task completes", func() bool {
		r := c2.post(get)
		var v struct{ Status string }
		_ = json.Unmarshal(r.result, &v)
		status = v.Status
		return status == "completed"
	})
	result := fmt.Sprintf(`{"jsonrpc":"2.0","id":4,"method":"tasks/result","params":{"taskId":%q}}`, created.Task.TaskID)
	if r := c2.post(result); !r.ok() || !strings.Contains(string(r.result), "done after 3s") {
		t.Fatalf("tasks/result: %v %s", r, r.result)
	}

	// The worker that ran it dies after it finished: the result stays.
	w.signal(syscall.SIGKILL)
	if r := c2.post(result); !r.ok() || !strings.Contains(string(r.result), created.Task.TaskID) {
		t.Fatalf("tasks/result after the worker was killed: %v %s", r, r.result)
	}
}

// A task whose worker is SIGKILLed while its call runs does not stay
// working forever: once the worker's lease runs out (30 s), every reader
// reports it failed with WORKER_LOST, and a tasks/result waiting on it
// answers that error. (The call is not retried: a tool call may not be
// idempotent.)
func TestFaultTaskWorkerKilledMidRun(t *testing.T) {
	d := newDeployment(t, 3)
	_, url, _ := d.service("core", "auth,registry,router,ingress")
	w, _ := d.workerFor("jobs-worker", "jobs")
	c := &client{url: url + "/mcp/jobs", hc: http.Client{Timeout: 90 * time.Second}}
	waitFor(t, readyLimit, "a session on jobs", func() bool { return c.initialize().ok() })

	before := d.upstream.count()
	r := c.post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"slow","arguments":{"seconds":25},"task":{}}}`)
	var created struct {
		Task struct{ TaskID, Status string }
	}
	if !r.ok() || json.Unmarshal(r.result, &created) != nil || created.Task.Status != "working" {
		t.Fatalf("tools/call as a task: %v %s", r, r.result)
	}
	waitFor(t, 30*time.Second, "the upstream runs the call", func() bool { return d.upstream.count() > before })
	waiting := make(chan rpcResult, 1)
	go func() {
		cl := &client{url: c.url, session: c.session, hc: c.hc}
		waiting <- cl.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"tasks/result","params":{"taskId":%q}}`, created.Task.TaskID))
	}()
	w.signal(syscall.SIGKILL)
	killed := time.Now()

	get := fmt.Sprintf(`{"jsonrpc":"2.0","id":4,"method":"tasks/get","params":{"taskId":%q}}`, created.Task.TaskID)
	var v struct{ Status, StatusMessage string }
	waitFor(t, 60*time.Second, "the task is reported failed", func() bool {
		_ = json.Unmarshal(c.post(get).result, &v)
		return v.Status != "working"
	})
	if v.Status != "failed" || !strings.Contains(v.StatusMessage, "worker running this task stopped") {
		t.Fatalf("tasks/get after the worker died: %+v", v)
	}
	select {
	case r := <-waiting:
		if r.code != -32027 {
			t.Fatalf("the waiting tasks/result: %v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting tasks/result did not answer")
	}
	t.Logf("reported failed %s after the kill (the lease is 30 s)", time.Since(killed).Round(time.Second))
}
