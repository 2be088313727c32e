package router

// The gateway's tasks (bus/tasks.go, docs/TASKS.md): tasks/get,
// tasks/result, tasks/list and tasks/cancel answered from the tasks bucket
// by whichever replica gets them. A caller sees only its own tasks (the key
// holds its owner hash) of the servers it may use now and selected; any
// other id is "task not found". On a single server without the gateway's
// tasks, the methods go to the upstream as before (its own tasks, relayed).

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// taskStore is the router's handle on the tasks bucket, opened on first use.
type taskStore struct {
	mu sync.Mutex
	kv jetstream.KeyValue
}

func (r *Router) tasksKV(ctx context.Context) (jetstream.KeyValue, *bus.Error) {
	r.tstore.mu.Lock()
	defer r.tstore.mu.Unlock()
	if r.tstore.kv != nil {
		return r.tstore.kv, nil
	}
	js, err := jetstream.New(r.nc)
	if err == nil {
		r.tstore.kv, err = js.KeyValue(ctx, bus.BucketTasks)
	}
	if err != nil {
		return nil, bus.Wrap(bus.ErrServiceUnavailable, err, "tasks are unavailable now (the tasks bucket cannot be opened)")
	}
	return r.tstore.kv, nil
}

// taskServers are the servers of the request whose tasks the gateway runs.
func taskServers(one bus.ServerSpec, many []bus.ServerSpec) map[string]bool {
	out := map[string]bool{}
	if many == nil {
		many = []bus.ServerSpec{one}
	}
	for _, s := range many {
		if len(s.Tasks) > 0 {
			out[s.Name] = true
		}
	}
	return out
}

// task answers a tasks/* request when it is the gateway's to answer
// (handled false: forward it as any other method).
func (r *Router) task(ctx context.Context, env bus.Envelope, msg *bus.Message, one bus.ServerSpec, many []bus.ServerSpec) (out []byte, e *bus.Error, handled bool) {
	servers := taskServers(one, many)
	if len(servers) == 0 {
		return nil, nil, false
	}
	modern := env.Modern()
	if msg.Method == bus.MethodTasksList {
		if modern {
			return nil, bus.Errorf(bus.ErrMethodNotFound, "tasks/list is not part of the %s tasks extension", bus.ExtensionTasks), true
		}
		out, e = r.listTasks(ctx, env, msg, servers)
		return out, e, true
	}
	id, _, _ := bus.StringField(msg.Params, "taskId")
	server, ours := bus.ParseTaskID(id)
	if !ours || !servers[server] {
		if many == nil && !ours {
			return nil, nil, false // the upstream's own task (relayed)
		}
		return nil, taskNotFound(msg.Method), true
	}
	key := bus.TaskKey(bus.TaskOwner(env.Caller), id)
	kv, e := r.tasksKV(ctx)
	if e != nil {
		return nil, e, true
	}
	switch msg.Method {
	case bus.MethodTasksGet:
		rec, _, e := readTask(ctx, kv, key, msg.Method)
		if e != nil {
			return nil, e, true
		}
		return bus.ResultResponse(msg.ID, rec.View(modern, "complete")), nil, true
	case bus.MethodTasksResult:
		if modern {
			return nil, bus.Errorf(bus.ErrMethodNotFound, "tasks/result is not part of the %s tasks extension: tasks/get carries the result", bus.ExtensionTasks), true
		}
		out, e = r.taskResult(ctx, kv, key, msg)
		return out, e, true
	case bus.MethodTasksCancel:
		out, e = r.cancelTask(ctx, kv, key, server, msg, modern)
		return out, e, true
	}
	return nil, nil, false
}

func taskNotFound(method string) *bus.Error {
	return bus.Errorf(bus.ErrInvalidParams, "%s: task not found (no task of yours has this taskId on the servers of this request, or it expired)", method)
}

// readTask reads key's record as a reader now sees it (bus.TaskRecord.Now).
func readTask(ctx context.Context, kv jetstream.KeyValue, key, method string) (bus.TaskRecord, uint64, *bus.Error) {
	if key == "" {
		return bus.TaskRecord{}, 0, taskNotFound(method)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.TaskRecord{}, 0, taskNotFound(method)
	}
	if err != nil {
		return bus.TaskRecord{}, 0, bus.Wrap(bus.ErrServiceUnavailable, err, "%s: the tasks bucket cannot be read now", method)
	}
	var rec bus.TaskRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return bus.TaskRecord{}, 0, bus.Errorf(bus.ErrInternal, "%s: the task's record is unreadable", method)
	}
	cur, gone := rec.Now(time.Now())
	if gone {
		return bus.TaskRecord{}, 0, taskNotFound(method)
	}
	return cur, e.Revision(), nil
}

// taskResult waits for the task to end (at most TaskResultWait, and while
// the request lasts) and answers what its call answered.
func (r *Router) taskResult(ctx context.Context, kv jetstream.KeyValue, key string, msg *bus.Message) ([]byte, *bus.Error) {
	changed := make(chan struct{}, 1)
	sub, err := r.nc.Subscribe(bus.KVSubject(bus.BucketTasks, key), func(*nats.Msg) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, bus.Wrap(bus.ErrServiceUnavailable, err, "tasks/result: cannot follow the task")
	}
	defer sub.Unsubscribe()
	_ = r.nc.Flush()
	wait := time.NewTimer(bus.TaskResultWait)
	defer wait.Stop()
	poll := 50 * time.Millisecond // the next look without an announcement
	for {
		rec, _, e := readTask(ctx, kv, key, msg.Method)
		if e != nil {
			return nil, e
		}
		if bus.Terminal(rec.Status) {
			return taskOutcome(msg, rec), nil
		}
		// Wake up when the record changes, or to look again: a write is
		// announced before the stream may have stored it (a read right
		// after finds the old revision), and a write the server was
		// already delivering as the subscription started is never
		// announced to it. So: again within 5 ms of an announcement,
		// else after poll (doubling to 2 s), and when the lease would run
		// out (a dead worker writes nothing more).
		next := min(max(time.Until(rec.LeaseUntil)+100*time.Millisecond, 100*time.Millisecond), poll)
		lease := time.NewTimer(next)
		select {
		case <-changed:
			poll = 5 * time.Millisecond
		case <-lease.C:
			poll = min(2*poll, 2*time.Second)
		case <-wait.C:
			lease.Stop()
			return nil, bus.Errorf(bus.ErrUpstreamTimeout, "tasks/result: task %s is still %s after %s; ask again (tasks/get polls without waiting)", rec.TaskID, rec.Status, bus.TaskResultWait)
		case <-ctx.Done():
			lease.Stop()
			return nil, bus.ContextError(ctx, rec.Server)
		}
		lease.Stop()
	}
}

// taskOutcome is what tasks/result answers for a finished task: exactly
// what the call answered, its result tied to the task in _meta.
func taskOutcome(msg *bus.Message, rec bus.TaskRecord) []byte {
	switch {
	case len(rec.Error) > 0:
		return bus.RawErrorResponse(msg.ID, rec.Error)
	case rec.Status == bus.TaskCancelled || len(rec.Result) == 0:
		return bus.ErrorResponse(msg.ID, bus.Errorf(bus.ErrInvalidParams, "tasks/result: task %s was cancelled; it has no result", rec.TaskID))
	}
	return bus.ResultResponse(msg.ID, relatedTask(rec.Result, rec.TaskID))
}

// relatedTask sets _meta["io.modelcontextprotocol/related-task"] on result.
func relatedTask(result json.RawMessage, id string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil || m == nil {
		return result
	}
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(m["_meta"], &meta)
	if meta == nil {
		meta = map[string]json.RawMessage{}
	}
	meta[bus.MetaRelatedTask], _ = json.Marshal(map[string]string{"taskId": id})
	m["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(m)
	if err != nil {
		return result
	}
	return out
}

// cancelTask marks the task cancelled and tells the server's workers to
// stop its call.
func (r *Router) cancelTask(ctx context.Context, kv jetstream.KeyValue, key, server string, msg *bus.Message, modern bool) ([]byte, *bus.Error) {
	for range 8 {
		rec, rev, e := readTask(ctx, kv, key, msg.Method)
		if e != nil {
			return nil, e
		}
		if bus.Terminal(rec.Status) {
			return nil, bus.Errorf(bus.ErrInvalidParams, "Cannot cancel task: already in terminal status '%s'", rec.ClientStatus(modern))
		}
		rec.Status, rec.StatusMessage, rec.UpdatedAt, rec.LeaseUntil = bus.TaskCancelled, "The task was cancelled by request.", time.Now(), time.Time{}
		v, _ := json.Marshal(rec)
		if _, err := kv.Update(ctx, key, v, rev); err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
				continue // the worker wrote meanwhile: read again
			}
			return nil, bus.Wrap(bus.ErrServiceUnavailable, err, "tasks/cancel: the task could not be updated")
		}
		_ = r.nc.Publish(bus.TaskCancelSubject(server), []byte(key))
		if modern {
			return bus.ResultResponse(msg.ID, json.RawMessage(`{"resultType":"complete"}`)), nil
		}
		return bus.ResultResponse(msg.ID, rec.View(false, "")), nil
	}
	return nil, bus.Errorf(bus.ErrServiceUnavailable, "tasks/cancel: the task kept changing; try again")
}

// taskList is a tasks/list result.
type taskList struct {
	Tasks      []json.RawMessage `json:"tasks"`
	NextCursor string            `json:"nextCursor,omitempty"`
}

// listTasks lists the caller's tasks on servers, TaskListPage at a time;
// the cursor is where the next page starts in the bucket's stream.
func (r *Router) listTasks(ctx context.Context, env bus.Envelope, msg *bus.Message, servers map[string]bool) ([]byte, *bus.Error) {
	var from uint64
	if c, ok, _ := bus.StringField(msg.Params, "cursor"); ok {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil || len(c) > 20 {
			return nil, bus.Errorf(bus.ErrInvalidParams, "tasks/list: the cursor is not one this gateway gave")
		}
		from = n
	}
	now := time.Now()
	list := taskList{Tasks: []json.RawMessage{}}
	owner := bus.TaskOwner(env.Caller)
	next, err := bus.ScanTasks(ctx, r.nc, owner, "", from, func(e bus.KVEntry) bool {
		var rec bus.TaskRecord
		if e.Deleted || strings.HasSuffix(e.Key, ".open") || json.Unmarshal(e.Value, &rec) != nil || rec.Owner != owner || !servers[rec.Server] {
			return true
		}
		cur, gone := rec.Now(now)
		if gone {
			return true
		}
		if len(list.Tasks) == bus.TaskListPage {
			return false
		}
		list.Tasks = append(list.Tasks, cur.View(false, ""))
		return true
	})
	if err != nil {
		return nil, bus.Wrap(bus.ErrServiceUnavailable, err, "tasks/list: the tasks bucket cannot be read now")
	}
	if next > 0 {
		list.NextCursor = strconv.FormatUint(next, 10)
	}
	out, _ := json.Marshal(list)
	return bus.ResultResponse(msg.ID, out), nil
}

// sessionCaps are m's capabilities for a session-era client: with the
// 2025-11-25 tasks capability when the gateway runs tasks for a server
// (replacing an upstream's own: its calls are the gateway's tasks now).
func (m mergedInfo) sessionCaps() json.RawMessage {
	if !m.tasks {
		return m.caps
	}
	return setCapability(m.caps, func(c map[string]json.RawMessage) {
		c["tasks"] = json.RawMessage(`{"list":{},"cancel":{},"requests":{"tools":{"call":{}}}}`)
	})
}

// modernCaps are m's capabilities for a stateless-era client
// (modernCapabilities), with the tasks extension when the gateway runs
// tasks for a server.
func (m mergedInfo) modernCaps() json.RawMessage {
	caps := modernCapabilities(m.caps)
	if !m.tasks {
		return caps
	}
	return setCapability(caps, func(c map[string]json.RawMessage) {
		var ext map[string]json.RawMessage
		_ = json.Unmarshal(c["extensions"], &ext)
		if ext == nil {
			ext = map[string]json.RawMessage{}
		}
		ext[bus.ExtensionTasks] = json.RawMessage(`{}`)
		c["extensions"], _ = json.Marshal(ext)
	})
}

func setCapability(caps json.RawMessage, set func(map[string]json.RawMessage)) json.RawMessage {
	var c map[string]json.RawMessage
	if json.Unmarshal(caps, &c) != nil || c == nil {
		c = map[string]json.RawMessage{}
	}
	set(c)
	out, err := json.Marshal(c)
	if err != nil {
		return caps
	}
	return out
}
