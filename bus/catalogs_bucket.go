package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketCatalogs keeps, on disk, the last first page of each list a
// server's workers fetched from its upstream on their shared session, so
// that after a restart the first tools/list is answered at once (warm
// catalogs): a worker serves the kept page for its first list of that kind,
// asks the upstream meanwhile, and tells clients the list changed when the
// upstream's answer differs. Keyed like the lists bucket (ListKey); the
// value is a CatalogEntry. Only workers write it, each only its servers'
// keys (natsauth_roles.go); the registry makes it.
const BucketCatalogs = "mcpbus_catalogs"

// maxCatalogAge: a kept page older than this is gone (the bucket's MaxAge).
const maxCatalogAge = 7 * 24 * time.Hour

// CatalogEntry is a kept list page: the upstream's result, when it was
// fetched, and the fingerprint of the server record it came from, so that
// a page of a server whose upstream changed since is never served.
type CatalogEntry struct {
	Fingerprint string          `json:"fingerprint"`
	Fetched     int64           `json:"fetched"` // unix milliseconds
	Result      json.RawMessage `json:"result"`
}

// CatalogFingerprint names a server's upstream: its transport, URL or
// command and arguments. Credentials and policies are not in it: they change
// what a caller may see, which is applied to every answer after the catalog.
func CatalogFingerprint(transport, url, command string, args []string) string {
	h := sha256.Sum256([]byte(strings.Join(append([]string{transport, url, command}, args...), "\x00")))
	return hex.EncodeToString(h[:12])
}

// NewCatalogEntry encodes result as fetched at now from the upstream with
// fingerprint; false when it is too large to keep.
func NewCatalogEntry(fingerprint string, result json.RawMessage, now time.Time) ([]byte, bool) {
	v, err := json.Marshal(CatalogEntry{Fingerprint: fingerprint, Fetched: now.UnixMilli(), Result: result})
	if err != nil || len(v) > MaxListEntry {
		return nil, false
	}
	return v, true
}

// ReadCatalogEntry decodes a kept page for the upstream with fingerprint;
// ok is false for another upstream's, or an unreadable or oversized entry.
func ReadCatalogEntry(value []byte, fingerprint string) (json.RawMessage, bool) {
	var e CatalogEntry
	if len(value) > MaxListEntry || json.Unmarshal(value, &e) != nil || e.Fingerprint != fingerprint || len(e.Result) == 0 || e.Result[0] != '{' {
		return nil, false
	}
	return e.Result, true
}

// catalogsBucket is the catalogs bucket: on disk, one value per key.
var catalogsBucket = kvNoDirect{
	Bucket:      BucketCatalogs,
	Description: "mcpbus upstream lists kept across restarts (warm catalogs)",
	Storage:     jetstream.FileStorage,
	MaxMsgSize:  MaxListEntry + 4096,
	MaxMsgs:     maxListsEntries,
	MaxAge:      maxCatalogAge,
	Discard:     jetstream.DiscardOld,
}

// EnsureCatalogsBucket creates (or updates) the catalogs bucket. The
// registry makes it, as it makes the lists bucket: workers may not create
// buckets.
func EnsureCatalogsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	return ensureKVNoDirect(ctx, js, catalogsBucket, p)
}
