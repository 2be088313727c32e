package bus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A task id a client sends is checked before it becomes a key: only the
// shape NewTaskID makes passes, bounded, and the key holds the owner.
func TestTaskIDsAreBoundedBeforeTheyBecomeKeys(t *testing.T) {
	id := NewTaskID("jobs")
	if s, ok := ParseTaskID(id); !ok || s != "jobs" {
		t.Fatalf("ParseTaskID(%q) = %q, %v", id, s, ok)
	}
	if NewTaskID("jobs") == id {
		t.Fatal("two task ids are the same")
	}
	owner := TaskOwner(Identity{KeyID: "k1"})
	if k := TaskKey(owner, id); k != owner+"."+id || len(owner) != 32 {
		t.Fatalf("TaskKey = %q", k)
	}
	if TaskOwner(Identity{KeyID: "k1", User: "u"}) == owner || TaskOwner(Identity{KeyID: "k2"}) == owner {
		t.Fatal("different callers share an owner")
	}
	for _, bad := range []string{"", "jobs", "jobs.", "jobs.short", "jobs.*AAAAAAAAAAAAAAAAAAAAA", "a.b." + id[5:],
		"jo bs." + id[5:], ">." + id[5:], strings.Repeat("a", 300) + "." + id[5:], id + "x", "jobs.AAAAAAAAAAAAAAAAAAAA.A"} {
		if _, ok := ParseTaskID(bad); ok {
			t.Errorf("ParseTaskID(%q) accepted", bad)
		}
		if TaskKey(owner, bad) != "" {
			t.Errorf("TaskKey(%q) made a key", bad)
		}
	}
	if TaskKey("short", id) != "" {
		t.Error("a key with a malformed owner")
	}
}

// A working task whose worker stopped renewing its lease reads as failed
// (the worker died mid-run), naming why; one past its ttl is gone; a tool
// error is a failed task in 2025-11-25 and a completed one in the extension.
func TestTaskRecordAsReadersSeeIt(t *testing.T) {
	now := time.Now()
	r := TaskRecord{TaskID: "jobs.x", Status: TaskWorking, CreatedAt: now.Add(-time.Minute), UpdatedAt: now.Add(-time.Minute),
		TTL: time.Hour, LeaseUntil: now.Add(-time.Second)}
	cur, gone := r.Now(now)
	if gone || cur.Status != TaskFailed || !strings.Contains(cur.StatusMessage, "worker running this task stopped") ||
		!strings.Contains(string(cur.Error), ErrWorkerLost.Code) {
		t.Fatalf("a task whose lease ran out: %+v gone=%v", cur, gone)
	}
	r.LeaseUntil = now.Add(time.Second)
	if cur, _ := r.Now(now); cur.Status != TaskWorking {
		t.Fatalf("a task with a live lease: %s", cur.Status)
	}
	if _, gone := r.Now(now.Add(2 * time.Hour)); !gone {
		t.Fatal("a task past its ttl is not gone")
	}
	done := TaskRecord{TaskID: "jobs.x", Status: TaskCompleted, ToolError: true, TTL: time.Minute, Result: json.RawMessage(`{"isError":true}`)}
	if done.ClientStatus(false) != TaskFailed || done.ClientStatus(true) != TaskCompleted {
		t.Fatal("isError maps wrong")
	}
	if v := string(done.View(true, "complete")); !strings.Contains(v, `"result":{"isError":true}`) || !strings.Contains(v, `"ttlMs":60000`) || strings.Contains(v, `"ttl":`) {
		t.Fatalf("modern view: %s", v)
	}
	if v := string(done.CreateTaskResult(false)); !strings.HasPrefix(v, `{"task":{`) || !strings.Contains(v, `"ttl":60000`) || strings.Contains(v, "result") {
		t.Fatalf("2025-11-25 CreateTaskResult: %s", v)
	}
}

func TestReadTaskParams(t *testing.T) {
	for params, want := range map[string]string{
		`{"name":"a"}`:                     "none",
		`{"name":"a","task":{}}`:           "0s",
		`{"name":"a","task":{"ttl":1500}}`: "1.5s",
		`{"name":"a","task":{"ttl":1e12}}`: MaxTaskRetention.String(),
		`{"name":"a","task":[]}`:           "error",
		`{"name":"a","task":{"ttl":-1}}`:   "error",
		`{"name":"a","task":{"ttl":"x"}}`:  "error",
		`{"name":"a","task":{"ttl":1.5}}`:  "1ms",
	} {
		p, ok, e := ReadTaskParams(json.RawMessage(params))
		got := "none"
		switch {
		case e != nil:
			got = "error"
		case ok:
			got = p.TTL.String()
		}
		if got != want {
			t.Errorf("%s: %s, want %s", params, got, want)
		}
	}
	if TaskTTL(0, time.Hour) != time.Hour || TaskTTL(time.Minute, time.Hour) != time.Minute || TaskTTL(2*time.Hour, time.Hour) != time.Hour {
		t.Error("TaskTTL")
	}
	if !DeclaresTasksExtension(json.RawMessage(`{"extensions":{"io.modelcontextprotocol/tasks":{}}}`)) || DeclaresTasksExtension(json.RawMessage(`{}`)) {
		t.Error("DeclaresTasksExtension")
	}
}
