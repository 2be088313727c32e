package toolworkers

// Durable tool calls (bus/tasks.go, docs/TASKS.md): a tools/call a client
// asks to run as a task (params.task in 2025-11-25; the tasks extension
// declared, in 2026-07-28), on a server whose tasks setting lists the tool,
// is stored in the tasks bucket as working and answered with the task at
// once; the call then runs on this worker detached from the client's
// request (the client going away, the ingress dying or the router
// restarting do not end it; tasks/cancel does), through the same path as
// any call (filters, pins, credentials, limiter, breaker, audit and usage),
// and its outcome is written to the bucket. While it runs the worker
// renews the record's lease, so a reader can tell a task whose worker died
// mid-run (bus.TaskRecord.Now).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// workerTasks is one worker's part of its server's tasks.
type workerTasks struct {
	w   *Worker
	cfg *config.Tasks
	js  jetstream.JetStream
	id  string // this replica, in records (for the logs)

	mu  sync.Mutex
	kv  jetstream.KeyValue
	sub *nats.Subscription
	// running: bucket key -> the cancel of the task's run.
	running sync.Map
}

func newWorkerTasks(w *Worker, cfg *config.Tasks, js jetstream.JetStream) *workerTasks {
	if cfg == nil {
		return nil
	}
	return &workerTasks{w: w, cfg: cfg, js: js, id: nuid.Next()}
}

// listen subscribes to the server's task cancellations (every replica: the
// one running the task stops it).
func (t *workerTasks) listen() error {
	if t == nil {
		return nil
	}
	sub, err := t.w.nc.Subscribe(bus.TaskCancelSubject(t.w.up.Name), func(m *nats.Msg) {
		if c, ok := t.running.Load(string(m.Data)); ok {
			t.w.log.Info("tasks/cancel: stopping a task's call")
			c.(context.CancelFunc)()
		}
	})
	if err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	t.mu.Lock()
	t.sub = sub
	t.mu.Unlock()
	return nil
}

// end stops hearing cancellations. Running tasks go on to their end (a
// replaced worker's upstream link closes, which ends them failed).
func (t *workerTasks) end() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sub != nil {
		_ = t.sub.Unsubscribe()
		t.sub = nil
	}
}

// bucket opens the tasks bucket (the registry makes it).
func (t *workerTasks) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.kv != nil {
		return t.kv, nil
	}
	if t.js == nil {
		return nil, errors.New("tasks need JetStream")
	}
	kv, err := t.js.KeyValue(ctx, bus.BucketTasks)
	if err != nil {
		return nil, err
	}
	t.kv = kv
	return kv, nil
}

// accept runs msg as a task if it asks to be one: it answers reply (the
// task, or why not) and returns true; false leaves the call to the plain
// path (no task asked, or a stateless-era call the server keeps plain).
func (t *workerTasks) accept(req micro.Request, reply bus.Reply, env bus.Envelope, msg *bus.Message, tool string, span *callSpan) bool {
	w := t.w
	modern := env.Modern()
	var asked bus.TaskParams
	if modern {
		// The extension is server-directed: a client that declares it gets
		// a task for every tool the server lets run as one.
		if !bus.DeclaresTasksExtension(env.ClientCapabilities) || !bus.TaskAllowed(t.cfg.Tools, tool) {
			return false
		}
	} else {
		p, want, e := bus.ReadTaskParams(msg.Params)
		if e != nil {
			_ = reply.Error(span.fail(e))
			return true
		}
		if !want {
			return false
		}
		if !bus.TaskAllowed(t.cfg.Tools, tool) {
			// The spec's answer for a tool whose taskSupport is forbidden.
			_ = reply.Error(span.fail(bus.Errorf(bus.ErrMethodNotFound,
				"tool %q on server %q may not run as a task (mcp_servers.%s.tasks does not list it): call it without params.task",
				tool, w.up.Name, w.up.Name)))
			return true
		}
		asked = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, e := t.create(ctx, env, tool, asked)
	if e != nil {
		w.log.Warn("a task was not created", "request_id", env.RequestID, "tool", tool, "code", e.Kind.Code, "err", e.Detail())
		_ = reply.Error(span.fail(e))
		return true
	}
	_ = reply.Respond(bus.ResultResponse(msg.ID, rec.CreateTaskResult(modern)))
	go t.run(req, env, msg, tool, rec)
	return true
}

// create checks the caller's open tasks against the limit and stores a
// new working task.
func (t *workerTasks) create(ctx context.Context, env bus.Envelope, tool string, asked bus.TaskParams) (bus.TaskRecord, *bus.Error) {
	w := t.w
	kv, err := t.bucket(ctx)
	if err != nil {
		return bus.TaskRecord{}, bus.Wrap(bus.ErrServiceUnavailable, err, "tasks of server %q cannot be stored now (the tasks bucket is unavailable)", w.up.Name)
	}
	owner := bus.TaskOwner(env.Caller)
	now := time.Now()
	id := bus.NewTaskID(w.up.Name)
	if e := t.claim(ctx, kv, env, owner, id); e != nil {
		return bus.TaskRecord{}, e
	}
	rec := bus.TaskRecord{TaskID: id, Owner: owner, Server: w.up.Name, Tool: tool,
		Status: bus.TaskWorking, StatusMessage: "The call is running.", CreatedAt: now, UpdatedAt: now,
		TTL: bus.TaskTTL(asked.TTL, t.cfg.Retention), LeaseUntil: now.Add(bus.TaskLease), Worker: t.id}
	v, _ := json.Marshal(rec)
	if _, err := kv.Create(ctx, bus.TaskKey(owner, rec.TaskID), v); err != nil {
		t.unclaim(owner, id)
		return bus.TaskRecord{}, bus.Wrap(bus.ErrServiceUnavailable, err, "the task could not be stored (tasks bucket)")
	}
	return rec, nil
}

// claim adds id to owner's unfinished tasks on this server, refusing it
// over the limit. At the limit it first drops the ids whose task ended or
// is gone (one whose worker died and left it listed).
func (t *workerTasks) claim(ctx context.Context, kv jetstream.KeyValue, env bus.Envelope, owner, id string) *bus.Error {
	w := t.w
	key := bus.TaskOpenKey(owner, w.up.Name)
	unavailable := func(err error) *bus.Error {
		return bus.Wrap(bus.ErrServiceUnavailable, err, "tasks of server %q cannot be counted now (the tasks bucket is unavailable)", w.up.Name)
	}
	for range 8 {
		var open bus.TaskOpen
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		case err != nil:
			return unavailable(err)
		default:
			rev = e.Revision()
			_ = json.Unmarshal(e.Value(), &open)
		}
		if len(open.IDs) >= t.cfg.MaxOpen {
			open.IDs = t.stillOpen(ctx, kv, owner, open.IDs)
		}
		if len(open.IDs) >= t.cfg.MaxOpen {
			return bus.Errorf(bus.ErrTaskLimit,
				"%s has %d unfinished tasks on server %q, its limit (mcp_servers.%s.task_max_open_per_key: %d): wait for one to finish or cancel one (tasks/cancel)",
				env.Caller.Who(), len(open.IDs), w.up.Name, w.up.Name, t.cfg.MaxOpen)
		}
		open.IDs = append(open.IDs, id)
		v, _ := json.Marshal(open)
		if rev == 0 {
			_, err = kv.Create(ctx, key, v)
		} else {
			_, err = kv.Update(ctx, key, v, rev)
		}
		if err == nil {
			return nil
		}
		if !isWrongSequence(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return unavailable(err)
		}
	}
	return unavailable(errors.New("the list of open tasks kept changing"))
}

// stillOpen is ids without the tasks that ended or are gone.
func (t *workerTasks) stillOpen(ctx context.Context, kv jetstream.KeyValue, owner string, ids []string) []string {
	now := time.Now()
	var out []string
	for _, id := range ids {
		e, err := kv.Get(ctx, bus.TaskKey(owner, id))
		if err != nil {
			if !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
				out = append(out, id) // unknown: still counts
			}
			continue
		}
		var r bus.TaskRecord
		if json.Unmarshal(e.Value(), &r) != nil {
			continue
		}
		if cur, gone := r.Now(now); !gone && !bus.Terminal(cur.Status) {
			out = append(out, id)
		}
	}
	return out
}

// unclaim removes id from owner's unfinished tasks on this server (its
// task ended, or was never stored).
func (t *workerTasks) unclaim(owner, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := t.bucket(ctx)
	if err != nil {
		return
	}
	key := bus.TaskOpenKey(owner, t.w.up.Name)
	for range 8 {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return
		}
		var open bus.TaskOpen
		_ = json.Unmarshal(e.Value(), &open)
		i := slices.Index(open.IDs, id)
		if i < 0 {
			return
		}
		open.IDs = slices.Delete(open.IDs, i, i+1)
		v, _ := json.Marshal(open)
		if _, err = kv.Update(ctx, key, v, e.Revision()); err == nil || !isWrongSequence(err) {
			return
		}
	}
}

// run makes the task's call, detached from the client's request: bounded
// by the task's lifetime, ended early only by tasks/cancel.
func (t *workerTasks) run(req micro.Request, env bus.Envelope, msg *bus.Message, tool string, rec bus.TaskRecord) {
	w := t.w
	key := bus.TaskKey(rec.Owner, rec.TaskID)
	ctx, cancel := context.WithDeadline(context.Background(), rec.CreatedAt.Add(rec.TTL))
	defer cancel()
	t.running.Store(key, cancel)
	defer t.running.Delete(key)
	stopLease := t.renewLease(key)

	// Nothing of the client's request may end it: no stream to relay on
	// (a server-to-client request is refused), its own request id (a
	// revocation or a stateless client's departure names the original),
	// its own JSON-RPC id (notifications/cancelled names the original).
	modern := env.Modern()
	env.Stream = ""
	env.Deadline = rec.CreatedAt.Add(rec.TTL)
	env.RequestID += "-task"
	run := *msg
	run.ID, _ = json.Marshal(rec.TaskID)
	if !modern {
		if p, err := withoutField(msg.Params, "task"); err == nil {
			run.Params = p
		}
	}
	var got *nats.Msg
	capture := bus.CaptureReply(func(m *nats.Msg) { got = m })
	span := w.startSpan(req.Headers(), env, msg.Method, run.Params)
	var received time.Time
	if w.audit != nil {
		received = time.Now()
	}
	w.call(ctx, cancel, req, capture, env, &run, tool, received, span)
	span.End()
	stopLease()
	t.finish(key, rec, got, modern)
	t.unclaim(rec.Owner, rec.TaskID)
}

// finish writes the task's outcome, unless it was cancelled meanwhile (a
// cancelled task stays cancelled).
func (t *workerTasks) finish(key string, rec bus.TaskRecord, got *nats.Msg, modern bool) {
	w := t.w
	outcome := func(r *bus.TaskRecord) {
		r.UpdatedAt, r.LeaseUntil = time.Now(), time.Time{}
		r.Status, r.StatusMessage = bus.TaskCompleted, "The call finished."
		if got == nil {
			r.Status, r.StatusMessage = bus.TaskFailed, "The call ended without an answer."
			r.Error = taskError(bus.Errorf(bus.ErrInternal, "the task's call ended without an answer"), modern)
			return
		}
		if e := bus.ReplyError(got); e != nil {
			r.Status, r.StatusMessage, r.Error = bus.TaskFailed, e.Message, taskError(e, modern)
			return
		}
		m, perr := bus.ParseMessage(got.Data)
		switch {
		case perr != nil:
			r.Status, r.StatusMessage, r.Error = bus.TaskFailed, perr.Message, taskError(perr, modern)
		case len(m.Error) > 0:
			var em struct {
				Message string `json:"message"`
			}
			_ = json.Unmarshal(m.Error, &em)
			r.Status, r.StatusMessage, r.Error = bus.TaskFailed, bus.Shorten(em.Message, 512), m.Error
		default:
			r.Result = m.Result
			var res struct {
				IsError bool `json:"isError"`
			}
			_ = json.Unmarshal(m.Result, &res)
			if r.ToolError = res.IsError; res.IsError {
				r.StatusMessage = "The tool reported an error (isError)."
			}
		}
	}
	err := t.update(key, func(r *bus.TaskRecord) bool {
		if bus.Terminal(r.Status) {
			return false // cancelled: it stays so
		}
		outcome(r)
		if v, _ := json.Marshal(r); int64(len(v)) > w.nc.MaxPayload()-2048 {
			e := bus.Errorf(bus.ErrUpstreamProtocol, "the result of tool %q is %d bytes, over what a task can store (the bus's max payload, %d bytes)",
				rec.Tool, len(r.Result), w.nc.MaxPayload())
			r.Result, r.ToolError = nil, false
			r.Status, r.StatusMessage, r.Error = bus.TaskFailed, e.Message, taskError(e, modern)
		}
		return true
	})
	if err != nil {
		// The lease runs out, and readers report the task failed.
		w.log.Warn("a task's outcome could not be stored", "task_server", rec.Server, "tool", rec.Tool, "err", err)
	}
}

// taskError is e as the JSON-RPC error object the call would have answered.
func taskError(e *bus.Error, modern bool) json.RawMessage {
	raw, _, _ := bus.Field(bus.ErrorResponseFor(json.RawMessage("0"), e, modern), "error")
	return raw
}

// renewLease renews key's lease every TaskLease/3 while its call runs;
// the returned func stops it.
func (t *workerTasks) renewLease(key string) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(bus.TaskLease / 3)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				err := t.update(key, func(r *bus.TaskRecord) bool {
					if bus.Terminal(r.Status) {
						return false
					}
					r.LeaseUntil = time.Now().Add(bus.TaskLease)
					return true
				})
				if err != nil {
					t.w.log.Warn("a task's lease could not be renewed", "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// update applies change to key's record with compare-and-set, again on a
// concurrent write; change returns false to leave the record as it is.
func (t *workerTasks) update(key string, change func(*bus.TaskRecord) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := t.bucket(ctx)
	if err != nil {
		return err
	}
	for range 8 {
		e, err := kv.Get(ctx, key)
		if err != nil {
			return err
		}
		var r bus.TaskRecord
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			return err
		}
		if !change(&r) {
			return nil
		}
		v, _ := json.Marshal(r)
		if _, err = kv.Update(ctx, key, v, e.Revision()); err == nil || !isWrongSequence(err) {
			return err
		}
	}
	return errors.New("the task's record kept changing")
}

// withoutField is obj without key (the upstream knows nothing of tasks).
func withoutField(obj json.RawMessage, key string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	if _, ok := m[key]; !ok {
		return obj, nil
	}
	delete(m, key)
	return json.Marshal(m)
}

// mark sets execution.taskSupport "optional" on the listed tools that may
// run as tasks (a tool whose upstream says otherwise keeps its word).
func (t *workerTasks) mark(result json.RawMessage) json.RawMessage {
	var res map[string]json.RawMessage
	var tools []map[string]json.RawMessage
	if json.Unmarshal(result, &res) != nil || json.Unmarshal(res["tools"], &tools) != nil {
		return result
	}
	changed := false
	for _, tool := range tools {
		var name string
		if json.Unmarshal(tool["name"], &name) != nil || !bus.TaskAllowed(t.cfg.Tools, name) {
			continue
		}
		var exec map[string]json.RawMessage
		_ = json.Unmarshal(tool["execution"], &exec)
		if _, said := exec["taskSupport"]; said {
			continue
		}
		if exec == nil {
			exec = map[string]json.RawMessage{}
		}
		exec["taskSupport"] = json.RawMessage(`"optional"`)
		tool["execution"], _ = json.Marshal(exec)
		changed = true
	}
	if !changed {
		return result
	}
	res["tools"], _ = json.Marshal(tools)
	out, err := json.Marshal(res)
	if err != nil {
		return result
	}
	return out
}
