package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The audit stream (docs/AUDIT.md): one record per tools/call a tool worker
// handled or refused, kept apart from usage (StreamUsage) with its own
// retention and its own reader role (RoleAudit), since a record may hold a
// call's arguments.

// StreamAudit is the JetStream stream of audit records.
const StreamAudit = "MCPBUS_AUDIT"

// SubjectAuditAll matches every audit record.
const SubjectAuditAll = Root + ".audit.>"

// Audit outcomes: the last token of an audit subject.
const (
	AuditOK        = "ok"        // the upstream answered a result
	AuditError     = "error"     // the upstream answered a JSON-RPC error, or the gateway failed the call
	AuditDenied    = "denied"    // refused by the server's tool filter or the caller's tool permissions
	AuditCancelled = "cancelled" // the client cancelled it
)

// AuditOutcomes are the outcomes a record may have.
var AuditOutcomes = []string{AuditOK, AuditError, AuditDenied, AuditCancelled}

// AuditPin is the last token of the audit subjects that carry a PinEvent
// (PinEventSubject) rather than an AuditRecord.
const AuditPin = "pin"

// IsPinEvent reports whether an audit stream subject carries a PinEvent.
func IsPinEvent(subject string) bool {
	return strings.HasSuffix(subject, "."+AuditPin) && strings.HasPrefix(subject, Root+".audit.")
}

// AuditSubject is where the record of one call on server is published:
// mcpbus.v1.audit.<server>.<outcome>. Both tokens are bounded (a server
// name is a valid token; an outcome not in AuditOutcomes becomes "error").
func AuditSubject(server, outcome string) string {
	switch outcome {
	case AuditOK, AuditError, AuditDenied, AuditCancelled:
	default:
		outcome = AuditError
	}
	return Root + ".audit." + usageToken(server, "_none") + "." + outcome
}

// AuditFilter is the subject filter for the records of server with
// outcome (one of AuditOutcomes, or AuditPin for pin events); an empty part
// matches any.
func AuditFilter(server, outcome string) string {
	part := func(s string) string {
		if s == "" {
			return "*"
		}
		return usageToken(s, "")
	}
	return Root + ".audit." + part(server) + "." + part(outcome)
}

// auditOfServer matches the records of server (a name or "*").
func auditOfServer(server string) string { return Root + ".audit." + server + ".*" }

// AuditArguments is what a record keeps of a call's arguments
// (general_settings.mcp_audit.arguments).
type AuditArguments string

const (
	AuditArgsHash AuditArguments = "hash" // their SHA-256 (canonical JSON) only: the default
	AuditArgsFull AuditArguments = "full" // the arguments themselves too (they may hold secrets)
	AuditArgsNone AuditArguments = "none" // nothing of them
)

// AuditMaxArguments bounds the arguments a record holds in full; larger
// arguments are left out (ArgumentsTruncated), their hash kept.
const AuditMaxArguments = 16 << 10

// AuditMaxMsgSize bounds one stored record.
const AuditMaxMsgSize = 64 << 10

// Audit stream defaults (general_settings.mcp_audit.max_age, max_bytes).
const (
	DefaultAuditMaxAge     = 30 * 24 * time.Hour
	DefaultAuditMaxBytes   = 256 << 20 // the embedded server's store is 2 GiB, the usage stream's 1 GiB
	DefaultAuditDuplicates = 2 * time.Minute
)

// AuditRecord is one call as the audit stream keeps it. It never holds the
// caller's key or any credential: KeyID is the key's token (its hash). With
// arguments "full", Arguments holds what the caller sent, which may be
// anything the caller chose to send (docs/AUDIT.md).
type AuditRecord struct {
	Time      time.Time `json:"time"`       // when the worker took the call
	RequestID string    `json:"request_id"` // the gateway's request id; also the dedup id
	KeyID     string    `json:"key_id,omitempty"`
	KeyAlias  string    `json:"key_alias,omitempty"`
	User      string    `json:"user_id,omitempty"`
	Team      string    `json:"team_id,omitempty"`
	OrgID     string    `json:"organization_id,omitempty"`
	IPClass   IPClass   `json:"ip_class"`
	Server    string    `json:"server"`
	Method    string    `json:"method"`
	Tool      string    `json:"tool,omitempty"`
	// ArgumentsSHA256 is the hex SHA-256 of the arguments' canonical JSON
	// (CanonicalJSON), unless arguments are "none".
	ArgumentsSHA256 string `json:"arguments_sha256,omitempty"`
	// Arguments, with arguments "full": params.arguments as sent, if at
	// most AuditMaxArguments bytes; else ArgumentsTruncated.
	Arguments          json.RawMessage `json:"arguments,omitempty"`
	ArgumentsTruncated bool            `json:"arguments_truncated,omitempty"`
	Outcome            string          `json:"outcome"`              // AuditOutcomes
	ErrorCode          string          `json:"error_code,omitempty"` // catalog code, or the upstream's JSON-RPC code
	DurationMS         float64         `json:"duration_ms"`          // in the worker
	UpstreamMS         float64         `json:"upstream_ms"`          // waiting for the upstream (0 if never sent)
	// Guards are the decisions of the guards that ran on the call
	// (guard.go, docs/GUARDS.md), in the order they ran.
	Guards []AuditGuard `json:"guards,omitempty"`
}

// AuditGuard is one guard's decision on a call.
type AuditGuard struct {
	Name     string  `json:"name"`     // the guard's guardrail_name
	Phase    string  `json:"phase"`    // GuardPhaseRequest or GuardPhaseResult
	Decision string  `json:"decision"` // GuardPass, GuardModify, GuardBlock, GuardFailOpen, GuardFailClosed
	Reason   string  `json:"reason,omitempty"`
	MS       float64 `json:"ms"` // how long it took (µs resolution)
}

// Validate checks what a publisher must hold to: a request id, a server, a
// known outcome, and arguments within their bound.
func (r *AuditRecord) Validate() error {
	switch {
	case r.RequestID == "":
		return fmt.Errorf("audit record: request_id is empty")
	case !ValidToken(r.Server):
		return fmt.Errorf("audit record: server %q is not a subject token", r.Server)
	case AuditSubject(r.Server, r.Outcome) != Root+".audit."+r.Server+"."+r.Outcome:
		return fmt.Errorf("audit record: outcome %q is not one of %v", r.Outcome, AuditOutcomes)
	case len(r.Arguments) > AuditMaxArguments:
		return fmt.Errorf("audit record: arguments are %d bytes, over %d", len(r.Arguments), AuditMaxArguments)
	}
	return nil
}

// SetArguments records args (a tools/call's params.arguments, raw) as mode
// says: their hash (hash, full), and with full the arguments themselves
// when within AuditMaxArguments; "" is hash. Arguments that are not JSON are hashed as
// they are.
func (r *AuditRecord) SetArguments(mode AuditArguments, args json.RawMessage) {
	if mode == AuditArgsNone {
		return
	}
	canon := CanonicalJSON(args)
	sum := sha256.Sum256(canon)
	r.ArgumentsSHA256 = hex.EncodeToString(sum[:])
	if mode != AuditArgsFull {
		return
	}
	if len(canon) > AuditMaxArguments {
		r.ArgumentsTruncated = true
		return
	}
	r.Arguments = canon
}

// CanonicalJSON is v compacted with object keys sorted (numbers as written),
// so equal arguments hash equally however they were spelled; absent
// arguments are "null"; v that is not JSON is returned as is.
func CanonicalJSON(v json.RawMessage) []byte {
	if len(bytes.TrimSpace(v)) == 0 {
		return []byte("null")
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil || d.More() {
		return v
	}
	out, err := json.Marshal(x) // map keys sorted; json.Number kept verbatim
	if err != nil {
		return v
	}
	return out
}

// AuditStreamOptions are the audit stream's limits; zero fields take the
// defaults.
type AuditStreamOptions struct {
	MaxAge   time.Duration
	MaxBytes int64
	State    StatePolicy
}

// AuditStreamConfig is the configuration of StreamAudit with o applied.
func AuditStreamConfig(o AuditStreamOptions) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        StreamAudit,
		Description: "mcpbus audit records, one per tools/call a tool worker handled or refused, and tool pin changes",
		Subjects:    []string{SubjectAuditAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Duplicates:  DefaultAuditDuplicates,
		MaxMsgSize:  AuditMaxMsgSize,
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultAuditMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultAuditMaxBytes
	}
	return cfg
}

// AuditStream creates StreamAudit or brings it to o. Unlike the usage
// stream, the configured retention is applied as it is, lower or higher
// than the stream's (an audit policy may require records be kept no
// longer than so long); the replicas follow StatePolicy and are never
// lowered.
func AuditStream(ctx context.Context, js jetstream.JetStream, o AuditStreamOptions) (jetstream.Stream, error) {
	cfg := AuditStreamConfig(o)
	s, err := EnsureStream(ctx, js, cfg, o.State)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamAudit, err)
	}
	got := s.CachedInfo().Config
	if got.MaxAge == cfg.MaxAge && got.MaxBytes == cfg.MaxBytes {
		return s, nil
	}
	got.MaxAge, got.MaxBytes = cfg.MaxAge, cfg.MaxBytes
	if s, err = js.UpdateStream(ctx, got); err != nil {
		return nil, fmt.Errorf("stream %s: applying max_age %s and max_bytes %d: %w", StreamAudit, cfg.MaxAge, cfg.MaxBytes, err)
	}
	return s, nil
}
