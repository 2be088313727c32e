package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Pinned tool definitions (docs/PINNING.md): against an upstream that
// changes a tool after it was trusted (a "rug pull"). On a server with
// tool_pinning set, the first time a worker sees a tool it pins the hash of
// its definition (ToolDefinition) in BucketToolPins; a later list whose
// definition differs moves the pin to pending, and until an admin approves
// the change (the registry's pins_approve) the tool is withheld from lists
// and calls (withhold) or listed flagged (flag). Every replica reads the
// same record, so every replica enforces the same pins.

// BucketToolPins holds one ToolPin per <server>.<tool> (PinKey), with
// history: file storage, no direct gets (workers write it, msgget.go).
const BucketToolPins = "mcpbus_tool_pins"

// PinHistory is how many revisions of each pin the bucket keeps.
const PinHistory = 16

// maxPinValue bounds one pin record (two definitions).
const maxPinValue = 1 << 20

// tool_pinning values.
const (
	PinningOff      = "off"
	PinningWithhold = "withhold"
	PinningFlag     = "flag"
)

// PinningModes are the values tool_pinning takes ("" is off).
var PinningModes = []string{PinningOff, PinningWithhold, PinningFlag}

// EffectivePinning is the pinning mode of a server whose tool_pinning is
// server, given general_settings.mcp_tool_pinning def: the server's own
// value when it has one (off included), else def; PinningOff when neither
// says. Workers enforce it and the pin API reports it.
func EffectivePinning(server, def string) string {
	for _, m := range []string{server, def} {
		if m != "" {
			return m
		}
	}
	return PinningOff
}

// Pin statuses.
const (
	PinPinned  = "pinned"  // the upstream's definition is the approved one
	PinPending = "pending" // the upstream changed it; not approved yet
)

// ToolPin is one tool's record in BucketToolPins.
type ToolPin struct {
	Server string `json:"server"`
	Tool   string `json:"tool"`
	Status string `json:"status"`
	// Hash is the approved definition's (hex SHA-256 of Definition).
	Hash       string          `json:"hash"`
	Definition json.RawMessage `json:"definition"`
	PinnedAt   time.Time       `json:"pinned_at"`
	// ApprovedBy names who approved the pinned definition ("" for the
	// first sight, which pins without asking).
	ApprovedBy string `json:"approved_by,omitempty"`
	// The changed definition waiting for approval (status pending).
	PendingHash       string          `json:"pending_hash,omitempty"`
	PendingDefinition json.RawMessage `json:"pending_definition,omitempty"`
	PendingSince      time.Time       `json:"pending_since,omitzero"`
}

// PinKey is the bucket key of server's tool: the server name, then the tool
// name base64url-encoded (tool names may hold anything; a key may not). ""
// when server is no subject token or tool is empty.
func PinKey(server, tool string) string {
	if !ValidToken(server) || tool == "" || len(tool) > MaxPinToolLen {
		return ""
	}
	return server + "." + base64.RawURLEncoding.EncodeToString([]byte(tool))
}

// MaxPinToolLen bounds the name of a tool that can be pinned: its key holds
// it (base64url), and a key is a subject. A longer name has no key, so
// withhold keeps such a tool out (it reads no pin).
const MaxPinToolLen = 256

// Validate checks r as the pin API takes it: a server name, a tool name
// (withTool) within MaxPinToolLen, a bounded hash if any (one that is not
// the pending hash is the registry's to refuse, with 409).
func (r PinRef) Validate(withTool bool) *Error {
	switch {
	case !ValidToken(r.Server):
		return Errorf(ErrBadRequest, "tool pins: %q is not a server name", Shorten(r.Server, 64))
	case withTool && (r.Tool == "" || len(r.Tool) > MaxPinToolLen || !ValidHeaderValue(r.Tool)):
		return Errorf(ErrBadRequest, "tool pins: the tool name must be 1-%d bytes of text", MaxPinToolLen)
	case !withTool && r.Tool != "":
		return Errorf(ErrBadRequest, "tool pins: a server's pin list names no tool")
	case len(r.Hash) > 128 || !ValidHeaderValue(r.Hash):
		return Errorf(ErrBadRequest, "tool pins: hash must be the pending definition's hash (at most 128 bytes of text)")
	}
	return nil
}

// PinKeys is the key pattern of every pin of server.
func PinKeys(server string) string { return server + ".*" }

// pinnedFields are the parts of a tool a pin covers.
var pinnedFields = []string{"name", "title", "description", "inputSchema", "outputSchema", "annotations"}

// ToolDefinition reads one tool of a tools/list result: its name, the
// canonical JSON of the pinned fields (object keys sorted at every depth,
// numbers as written) and its hash.
func ToolDefinition(tool json.RawMessage) (name string, canonical json.RawMessage, hash string, err error) {
	var t map[string]json.RawMessage
	if err := json.Unmarshal(tool, &t); err != nil {
		return "", nil, "", fmt.Errorf("a tool is not a JSON object: %w", err)
	}
	if json.Unmarshal(t["name"], &name) != nil || name == "" {
		return "", nil, "", fmt.Errorf("a tool has no name")
	}
	def := map[string]any{}
	for _, f := range pinnedFields {
		raw, ok := t[f]
		if !ok {
			continue
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return "", nil, "", fmt.Errorf("tool %q: %s: %w", name, f, err)
		}
		def[f] = v
	}
	canonical, err = json.Marshal(def) // maps marshal with sorted keys
	if err != nil {
		return "", nil, "", fmt.Errorf("tool %q: %w", name, err)
	}
	sum := sha256.Sum256(canonical)
	return name, canonical, hex.EncodeToString(sum[:]), nil
}

// PinDiff is one pinned field that differs between two definitions.
type PinDiff struct {
	Field   string          `json:"field"`
	Pinned  json.RawMessage `json:"pinned,omitempty"`
	Pending json.RawMessage `json:"pending,omitempty"`
}

// DiffDefinitions lists the fields of two canonical definitions that differ.
func DiffDefinitions(pinned, pending json.RawMessage) []PinDiff {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(pinned, &a)
	_ = json.Unmarshal(pending, &b)
	var out []PinDiff
	for _, f := range pinnedFields {
		if !bytes.Equal(a[f], b[f]) {
			out = append(out, PinDiff{Field: f, Pinned: a[f], Pending: b[f]})
		}
	}
	return out
}

// ErrToolPending answers a tools/call of a tool withheld because its
// definition changed since it was pinned and no admin approved the change.
var ErrToolPending = Kind{"MCPBUS_TOOL_PENDING_APPROVAL", -32045, http.StatusOK, http.StatusForbidden}

// PinEventSubject carries a PinEvent of server's (a tool pinned at first
// sight, changed to pending, approved, rejected):
// mcpbus.v1.audit.<server>.pin, so the audit stream (audit.go), when on,
// keeps pin changes beside the calls they affect, under the same
// retention, and its readers see both.
func PinEventSubject(server string) string { return Root + ".audit." + server + "." + AuditPin }

// SubjectPinEventsAll matches every server's pin events.
var SubjectPinEventsAll = PinEventSubject("*")

// Pin event kinds.
const (
	PinEventPinned   = "pinned"   // first sight
	PinEventPending  = "pending"  // the upstream changed a pinned tool
	PinEventApproved = "approved" // an admin pinned the pending definition
	PinEventRejected = "rejected" // an admin kept the pinned definition
)

// PinEvent is published on PinEventSubject when a pin changes; in the audit
// stream it is the record on a subject ending in ".pin" (IsPinEvent).
type PinEvent struct {
	Event        string    `json:"event"`
	Server       string    `json:"server"`
	Tool         string    `json:"tool"`
	Hash         string    `json:"hash"`
	PreviousHash string    `json:"previous_hash,omitempty"`
	By           string    `json:"by,omitempty"`
	At           time.Time `json:"at"`
}

// The pin API (registry; ingress: /v1/mcp/server/{name}/tool-pins...).
// List and get take a PinRef (get and approve with Tool set); list answers
// a PinList, get a PinDetail, approve and reject the pin they wrote.
const (
	SubjectRegistryPinsList    = Root + ".registry.pins_list"
	SubjectRegistryPinsGet     = Root + ".registry.pins_get"
	SubjectRegistryPinsApprove = Root + ".registry.pins_approve"
	// SubjectRegistryPinsReject drops the pending definition and keeps the
	// pinned one; if the upstream still lists the changed tool, the next
	// list makes it pending again.
	SubjectRegistryPinsReject = Root + ".registry.pins_reject"
)

// PinRef names a server's pins, or one tool's. Hash, on approve, if set,
// must be the pending hash (so an admin approves the change they saw).
type PinRef struct {
	Server string `json:"server"`
	Tool   string `json:"tool,omitempty"`
	Hash   string `json:"hash,omitempty"`
}

// PinSummary is one tool in a PinList.
type PinSummary struct {
	Tool        string    `json:"tool"`
	Status      string    `json:"status"`
	Hash        string    `json:"hash"`
	PendingHash string    `json:"pending_hash,omitempty"`
	PinnedAt    time.Time `json:"pinned_at"`
	ApprovedBy  string    `json:"approved_by,omitempty"`
}

// PinList answers SubjectRegistryPinsList: the server's setting and its
// pins, sorted by tool.
type PinList struct {
	Server      string       `json:"server"`
	ToolPinning string       `json:"tool_pinning"`
	Pins        []PinSummary `json:"pins"`
}

// PinRevision is one stored revision of a pin.
type PinRevision struct {
	Revision    uint64    `json:"revision"`
	At          time.Time `json:"at"`
	Status      string    `json:"status"`
	Hash        string    `json:"hash"`
	PendingHash string    `json:"pending_hash,omitempty"`
	ApprovedBy  string    `json:"approved_by,omitempty"`
}

// PinDetail answers SubjectRegistryPinsGet: the pin, what a pending change
// changes, and its stored history (oldest first).
type PinDetail struct {
	ToolPin
	Diff    []PinDiff     `json:"diff,omitempty"`
	History []PinRevision `json:"history"`
}

// toolPinsBucket is the stream EnsureToolPinsBucket makes.
var toolPinsBucket = kvNoDirect{
	Bucket:      BucketToolPins,
	Description: "mcpbus pinned tool definitions (tool_pinning)",
	Storage:     jetstream.FileStorage,
	MaxMsgSize:  maxPinValue + 4096,
	MaxMsgs:     -1,
	History:     PinHistory,
	Discard:     jetstream.DiscardOld,
}

// EnsureToolPinsBucket creates (or updates) the pins bucket and opens it.
// The registry makes it: workers may not create buckets (natsauth.go).
func EnsureToolPinsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	if err := ensureKVNoDirect(ctx, js, toolPinsBucket, p); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, BucketToolPins)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", BucketToolPins, err)
	}
	return kv, nil
}
