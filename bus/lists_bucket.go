package bus

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketLists shares, across a server's worker replicas, the first page of
// the lists an upstream of MCP 2026-07-28 says are fresh for a while
// (ttlMs), so that N replicas ask the upstream once per ttlMs, not N times.
// Keyed <server>.<kind> (ListKey); the value is a ListEntry. Only workers
// write it, each only its servers' keys (natsauth.go); the worker that
// hears a list change purges the key before it tells anyone, so a
// list_changed still invalidates at once.
const BucketLists = "mcpbus_lists"

// Bounds of the lists bucket: an entry larger than MaxListEntry is not
// shared (the replica keeps it for itself), and the bucket holds at most
// maxListsEntries, older entries going first. (No byte limit: JetStream
// reserves a memory stream's MaxBytes up front; a worker writes only its
// servers' four keys, so entries times MaxListEntry bound it.)
const (
	MaxListEntry    = 1 << 20
	maxListsEntries = 4096
	// maxListTTL: no entry outlives this, whatever ttlMs said (CacheTTL caps
	// it at a day; the bucket keeps less).
	maxListTTL = time.Hour
)

// ListEntry is a shared list: the upstream's result and when it stops
// being fresh.
type ListEntry struct {
	Until  int64           `json:"until"` // unix milliseconds
	Result json.RawMessage `json:"result"`
}

// ListKinds maps the cached list methods to their key's kind token.
var ListKinds = map[string]string{
	MethodToolsList:              "tools",
	MethodPromptsList:            "prompts",
	MethodResourcesList:          "resources",
	MethodResourcesTemplatesList: "templates",
}

// ListKey is the lists bucket key of server's first page of method ("" if
// the method is not a cached list).
func ListKey(server, method string) string {
	kind, ok := ListKinds[method]
	if !ok || !ValidToken(server) {
		return ""
	}
	return server + "." + kind
}

// NewListEntry encodes result, fresh for ttl from now (at most an hour);
// false when it is too large to share.
func NewListEntry(result json.RawMessage, ttl time.Duration, now time.Time) ([]byte, bool) {
	v, err := json.Marshal(ListEntry{Until: now.Add(min(ttl, maxListTTL)).UnixMilli(), Result: result})
	if err != nil || len(v) > MaxListEntry {
		return nil, false
	}
	return v, true
}

// ReadListEntry decodes a shared list: its result with ttlMs set to what
// is left of its freshness at now. ok is false for an entry that is stale,
// unreadable, or claims more than the bucket allows.
func ReadListEntry(value []byte, now time.Time) (json.RawMessage, bool) {
	var e ListEntry
	if len(value) > MaxListEntry || json.Unmarshal(value, &e) != nil || len(e.Result) == 0 || e.Result[0] != '{' {
		return nil, false
	}
	left := time.UnixMilli(e.Until).Sub(now)
	if left <= 0 || left > maxListTTL {
		return nil, false
	}
	return WithTTL(e.Result, left), true
}

// listsBucket is the lists bucket: the stream EnsureListsBucket makes.
var listsBucket = kvNoDirect{
	Bucket:      BucketLists,
	Description: "mcpbus upstream lists shared by worker replicas while their ttlMs holds",
	Storage:     jetstream.MemoryStorage,
	MaxMsgSize:  MaxListEntry + 4096,
	MaxMsgs:     maxListsEntries,
	MaxAge:      maxListTTL,
	Discard:     jetstream.DiscardOld,
}

// EnsureListsBucket creates (or updates) the lists bucket, in memory. The
// registry makes it, as it makes the OAuth2 token bucket: workers may not
// create buckets (natsauth.go); and, as there, no direct gets.
func EnsureListsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	return ensureKVNoDirect(ctx, js, listsBucket, p)
}
