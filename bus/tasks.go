package bus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Durable tool calls (docs/TASKS.md): a tools/call run as a task (the MCP
// tasks utility of 2025-11-25, the io.modelcontextprotocol/tasks extension
// of 2026-07-28) even when the upstream knows nothing of tasks. The worker
// that takes the call writes a TaskRecord (status working) in BucketTasks,
// answers the task at once and runs the call detached from the client's
// request; then it writes the outcome. tasks/get, tasks/result, tasks/list
// and tasks/cancel are answered from the bucket by whichever router
// replica gets them.
//
// Keys are <owner>.<server>.<nonce> (TaskKey): the owner is a hash of the
// caller (TaskOwner), so a caller reads only its own tasks (another key's
// lookup misses, exactly as a wrong id does) and lists them by the prefix;
// the server lets a worker's bus user write its own servers' tasks only.
// The task id a client sees is <server>.<nonce> (NewTaskID).

// BucketTasks holds one TaskRecord per task: file storage, no direct gets
// (workers write it, msgget.go).
const BucketTasks = "mcpbus_tasks"

// Task settings' bounds and defaults.
const (
	// DefaultTaskRetention is how long a task is kept after its creation
	// when the server sets no task_retention.
	DefaultTaskRetention = time.Hour
	// MaxTaskRetention bounds task_retention; the bucket drops any record
	// this long after its last write, whatever it says.
	MaxTaskRetention = 24 * time.Hour
	// DefaultTaskMaxOpen is task_max_open_per_key's default: unfinished
	// tasks one caller may have on one server.
	DefaultTaskMaxOpen = 10
	// TaskPollInterval is the pollInterval suggested to clients.
	TaskPollInterval = time.Second
	// TaskLease is how long a working task's record vouches for its worker;
	// the worker renews it every TaskLease/3. A reader that finds it expired
	// reports the task failed (its worker died mid-run).
	TaskLease = 30 * time.Second
	// TaskResultWait bounds one tasks/result wait (the ingress waits at most
	// ten minutes for any answer); past it the client is told to ask again.
	TaskResultWait = 9 * time.Minute
	// MaxTaskIDLen bounds a task id a client sends.
	MaxTaskIDLen = MaxTokenLen + 1 + taskNonceLen
	// TaskListPage is how many tasks one tasks/list page holds.
	TaskListPage = 50
)

// taskNonceLen is the length of a task id's random part: 16 bytes base64url.
const taskNonceLen = 22

// Task statuses (the spec's).
const (
	TaskWorking       = "working"
	TaskInputRequired = "input_required"
	TaskCompleted     = "completed"
	TaskFailed        = "failed"
	TaskCancelled     = "cancelled"
)

// ExtensionTasks is the 2026-07-28 tasks extension's name.
const ExtensionTasks = "io.modelcontextprotocol/tasks"

// MetaRelatedTask is the _meta key tying a message to its task.
const MetaRelatedTask = "io.modelcontextprotocol/related-task"

// The task methods.
const (
	MethodTasksGet    = "tasks/get"
	MethodTasksResult = "tasks/result"
	MethodTasksList   = "tasks/list"
	MethodTasksCancel = "tasks/cancel"
)

// TaskMethod reports whether method is one the gateway answers for its tasks.
func TaskMethod(method string) bool {
	switch method {
	case MethodTasksGet, MethodTasksResult, MethodTasksList, MethodTasksCancel:
		return true
	}
	return false
}

// ErrTaskLimit refuses a task over the server's task_max_open_per_key.
var ErrTaskLimit = Kind{"MCPBUS_TASK_LIMIT", -32050, http.StatusOK, http.StatusTooManyRequests}

// TaskRecord is one task in BucketTasks.
type TaskRecord struct {
	TaskID        string    `json:"task_id"`
	Owner         string    `json:"owner"`
	Server        string    `json:"server"`
	Tool          string    `json:"tool"`
	Status        string    `json:"status"`
	StatusMessage string    `json:"status_message,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// TTL is the task's lifetime from CreatedAt: after it the task is gone.
	TTL time.Duration `json:"ttl"`
	// LeaseUntil: while working, the worker running it vouches for it
	// until then (TaskLease).
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Worker names the worker replica running it (for the logs).
	Worker string `json:"worker,omitempty"`
	// The outcome: the tools/call result, or the JSON-RPC error object.
	Result json.RawMessage `json:"result,omitempty"`
	Error  json.RawMessage `json:"error,omitempty"`
	// ToolError: the result says isError (2025-11-25 calls that failed).
	ToolError bool `json:"tool_error,omitempty"`
}

// Terminal reports whether status is final.
func Terminal(status string) bool {
	return status == TaskCompleted || status == TaskFailed || status == TaskCancelled
}

// TaskOwner is whom a caller's tasks belong to: a hash of its key id and
// user (an OAuth caller's tasks are its user's on that client).
func TaskOwner(id Identity) string {
	sum := sha256.Sum256([]byte("mcpbus-task-owner\x00" + id.KeyID + "\x00" + id.User))
	return hex.EncodeToString(sum[:16])
}

// NewTaskID makes an unguessable task id for server: <server>.<16 random
// bytes, base64url>.
func NewTaskID(server string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return server + "." + base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseTaskID checks an id a client sent: the server it names, ok false
// for anything NewTaskID did not make (too long, not a token, a nonce of
// the wrong shape).
func ParseTaskID(id string) (server string, ok bool) {
	if len(id) > MaxTaskIDLen {
		return "", false
	}
	server, nonce, found := strings.Cut(id, ".")
	if !found || !ValidToken(server) || len(nonce) != taskNonceLen || !ValidToken(nonce) {
		return "", false
	}
	return server, true
}

// TaskKey is the bucket key of owner's task id ("" for an id ParseTaskID
// refuses).
func TaskKey(owner, id string) string {
	if _, ok := ParseTaskID(id); !ok || len(owner) != 32 {
		return ""
	}
	return owner + "." + id
}

// TaskOpenKey is the key of owner's unfinished tasks on server (TaskOpen):
// the open limit is kept exact with compare-and-set on it, without
// reading every task the owner has.
func TaskOpenKey(owner, server string) string { return owner + "." + server + ".open" }

// TaskOpen lists the ids of an owner's unfinished tasks on one server.
type TaskOpen struct {
	IDs []string `json:"ids"`
}

// TaskServerKeys is the key pattern of every task of server (a worker's
// grant).
func TaskServerKeys(server string) string { return "*." + server + ".*" }

// TaskCancelSubject is where the router tells server's workers to stop a
// task (the data is its key); every replica hears it.
func TaskCancelSubject(server string) string { return Root + ".tasks.cancel." + server }

// TaskCancelAll matches every server's task cancellations.
const TaskCancelAll = Root + ".tasks.cancel.*"

// Now is the record's status as a reader at now sees it: a working task
// whose lease ran out is failed (its worker died mid-run). gone reports a
// task past its TTL.
func (r *TaskRecord) Now(now time.Time) (rec TaskRecord, gone bool) {
	rec = *r
	if r.TTL > 0 && now.After(r.CreatedAt.Add(r.TTL)) {
		return rec, true
	}
	if !Terminal(rec.Status) && !rec.LeaseUntil.IsZero() && now.After(rec.LeaseUntil) {
		rec.Status, rec.UpdatedAt = TaskFailed, rec.LeaseUntil
		rec.StatusMessage = "the worker running this task stopped before it finished (no heartbeat since " + rec.LeaseUntil.Add(-TaskLease).UTC().Format(time.RFC3339) + ")"
		e, _ := json.Marshal(map[string]any{"code": ErrWorkerLost.RPC, "message": rec.StatusMessage, "data": map[string]string{"mcpbus_code": ErrWorkerLost.Code}})
		rec.Error, rec.Result = e, nil
	}
	return rec, false
}

// taskView is a Task as a client of either era sees it.
type taskView struct {
	ResultType    string          `json:"resultType,omitempty"`
	TaskID        string          `json:"taskId"`
	Status        string          `json:"status"`
	StatusMessage string          `json:"statusMessage,omitempty"`
	CreatedAt     string          `json:"createdAt"`
	LastUpdatedAt string          `json:"lastUpdatedAt"`
	TTL           *int64          `json:"ttl,omitempty"`
	PollInterval  *int64          `json:"pollInterval,omitempty"`
	TTLMs         *int64          `json:"ttlMs,omitempty"`
	PollMs        *int64          `json:"pollIntervalMs,omitempty"`
	Result        json.RawMessage `json:"result,omitempty"`
	Error         json.RawMessage `json:"error,omitempty"`
}

// ClientStatus is r's status for a client of the era modern says: in
// 2025-11-25 a tool result with isError is a failed task; in the
// extension it is completed (failed is for JSON-RPC errors only).
func (r *TaskRecord) ClientStatus(modern bool) string {
	if !modern && r.Status == TaskCompleted && r.ToolError {
		return TaskFailed
	}
	return r.Status
}

// View is r as a Task object: 2025-11-25 (ttl, pollInterval) or, modern,
// the extension's DetailedTask (ttlMs, pollIntervalMs, the outcome inline,
// resultType resultType).
func (r *TaskRecord) View(modern bool, resultType string) json.RawMessage {
	ttl, poll := r.TTL.Milliseconds(), TaskPollInterval.Milliseconds()
	v := taskView{TaskID: r.TaskID, Status: r.ClientStatus(modern), StatusMessage: r.StatusMessage,
		CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339Nano), LastUpdatedAt: r.UpdatedAt.UTC().Format(time.RFC3339Nano)}
	if modern {
		v.ResultType, v.TTLMs, v.PollMs = resultType, &ttl, &poll
		switch r.Status {
		case TaskCompleted:
			v.Result = r.Result
		case TaskFailed:
			v.Error = r.Error
		}
	} else {
		v.TTL, v.PollInterval = &ttl, &poll
	}
	out, _ := json.Marshal(v)
	return out
}

// CreateTaskResult is the answer to a call that became task r.
func (r *TaskRecord) CreateTaskResult(modern bool) json.RawMessage {
	if modern {
		return r.View(true, "task")
	}
	out, _ := json.Marshal(map[string]json.RawMessage{"task": r.View(false, "")})
	return out
}

// TaskParams are a tools/call's params.task (2025-11-25).
type TaskParams struct {
	// TTL is the lifetime asked for (0: none asked).
	TTL time.Duration
}

// ReadTaskParams reads params.task: absent (ok false), or an object with an
// optional ttl in milliseconds (a number, 0 or more; at most
// MaxTaskRetention counts).
func ReadTaskParams(params json.RawMessage) (p TaskParams, ok bool, e *Error) {
	raw, found, amb := Field(params, "task")
	if amb {
		return p, false, Errorf(ErrInvalidParams, "tools/call: params.task is given twice")
	}
	if !found || string(raw) == "null" {
		return p, false, nil
	}
	var t struct {
		TTL *json.Number `json:"ttl"`
	}
	if !isObject(raw) || json.Unmarshal(raw, &t) != nil {
		return p, false, Errorf(ErrInvalidParams, "tools/call: params.task must be an object ({} or {\"ttl\": milliseconds})")
	}
	if t.TTL != nil {
		ms, err := t.TTL.Float64()
		if err != nil || ms < 0 || math.IsInf(ms, 0) {
			return p, false, Errorf(ErrInvalidParams, "tools/call: params.task.ttl must be a number of milliseconds, 0 or more")
		}
		p.TTL = time.Duration(min(ms, float64(MaxTaskRetention.Milliseconds()))) * time.Millisecond
	}
	return p, true, nil
}

// DeclaresTasksExtension reports whether a stateless-era client's
// capabilities declare the tasks extension.
func DeclaresTasksExtension(caps json.RawMessage) bool {
	ext, ok, _ := Field(caps, "extensions")
	if !ok {
		return false
	}
	v, ok, _ := Field(ext, ExtensionTasks)
	return ok && isObject(v)
}

// TaskTTL is the lifetime a task gets: what the client asked, at most the
// server's retention (all of it when the client asked none).
func TaskTTL(asked, retention time.Duration) time.Duration {
	if retention <= 0 {
		retention = DefaultTaskRetention
	}
	if asked <= 0 || asked > retention {
		return retention
	}
	return asked
}

// TaskAllowed reports whether tool may run as a task on a server whose
// tasks setting is tools ("*" allows every tool).
func TaskAllowed(tools []string, tool string) bool {
	for _, t := range tools {
		if t == "*" || t == tool {
			return true
		}
	}
	return false
}

// ScanTasks calls each with every stored task of owner (optionally of one
// server) from stream sequence from, in order, until each returns false or
// nothing is left; it returns the sequence of the entry each stopped at,
// to go on from (0: the end).
// MSG.GET with next_by_subj reads without a consumer (msgget.go).
func ScanTasks(ctx context.Context, nc *nats.Conn, owner, server string, from uint64, each func(KVEntry) bool) (uint64, error) {
	filter := KVSubject(BucketTasks, owner+".>")
	if server != "" {
		filter = KVSubject(BucketTasks, owner+"."+server+".*")
	}
	seq := max(from, 1)
	for {
		m, err := msgGet(ctx, nc, KVStream(BucketTasks), map[string]any{"seq": seq, "next_by_subj": filter})
		if err != nil || m == nil {
			return 0, err
		}
		if !each(kvEntry(BucketTasks, m)) {
			return m.Seq, nil
		}
		seq = m.Seq + 1
	}
}

// tasksBucket is the stream EnsureTasksBucket makes.
var tasksBucket = kvNoDirect{
	Bucket:      BucketTasks,
	Description: "mcpbus durable tool calls (tasks): status and result per task",
	Storage:     jetstream.FileStorage,
	MaxMsgSize:  -1, // a record is bounded by the bus's max payload (the worker checks)
	MaxMsgs:     -1,
	MaxAge:      MaxTaskRetention + time.Hour,
	Discard:     jetstream.DiscardOld,
}

// EnsureTasksBucket creates (or updates) the tasks bucket. The registry
// makes it: workers and the router may not create buckets (natsauth.go).
func EnsureTasksBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	if err := ensureKVNoDirect(ctx, js, tasksBucket, p); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	return nil
}
