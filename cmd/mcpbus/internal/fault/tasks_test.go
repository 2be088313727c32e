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
