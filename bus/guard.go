package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Guards (docs/GUARDS.md): checks a tool worker runs on a tools/call before
// it goes upstream (phase request, on its arguments) and before its result
// returns (phase result). Built-in guards run in the worker; an external
// guard is any process that answers requests on GuardSubject(name), as a
// bus user with RoleGuards. This file is the external guards' wire contract:
// the subject, the request a worker sends, the reply it accepts, and the
// errors a caller gets.

// SubjectGuardAll matches every guard's subject.
const SubjectGuardAll = Root + ".guard.>"

// MaxGuardNameLen bounds a guard's name, which is one subject token.
const MaxGuardNameLen = 64

// GuardSubject is where guard name is asked: mcpbus.v1.guard.<name>.
// name must pass CheckGuardName.
func GuardSubject(name string) string { return Root + ".guard." + name }

// CheckGuardName checks that name can be a guard's subject token: 1 to
// MaxGuardNameLen characters of A-Z a-z 0-9 _ -.
func CheckGuardName(name string) error {
	if !ValidToken(name) || len(name) > MaxGuardNameLen {
		return fmt.Errorf("%q is not a guard name: 1 to %d characters of A-Z a-z 0-9 _ - (it is a NATS subject token)", Shorten(name, MaxGuardNameLen+8), MaxGuardNameLen)
	}
	return nil
}

// Guard phases: what a guard is asked about.
const (
	GuardPhaseRequest = "request" // a tools/call's arguments, before it goes upstream
	GuardPhaseResult  = "result"  // its result, before it returns to the caller
)

// Guard decisions. A guard answers pass, modify or block; fail_open and
// fail_closed are what the worker records when an external guard did not
// answer in time, or answered something it could not read.
const (
	GuardPass       = "pass"
	GuardModify     = "modify"
	GuardBlock      = "block"
	GuardFailOpen   = "fail_open"
	GuardFailClosed = "fail_closed"
)

// Bounds of a guard's reply.
const (
	// GuardMaxReply bounds a reply's size (a modified result included).
	GuardMaxReply = 8 << 20
	// GuardMaxReason bounds the reason a caller and the audit record see.
	GuardMaxReason = 512
)

// ErrGuardBlocked answers a tools/call a guard blocked, before it went
// upstream or on its result: the message names the guard, the phase and
// the guard's reason.
var ErrGuardBlocked = Kind{"MCPBUS_GUARD_BLOCKED", -32048, http.StatusOK, http.StatusForbidden}

// ErrGuardUnavailable answers a tools/call a fail-closed external guard did
// not answer in time (or answered unreadably): the message names the guard.
var ErrGuardUnavailable = Kind{"MCPBUS_GUARD_UNAVAILABLE", -32049, http.StatusOK, http.StatusServiceUnavailable}

// GuardRequest is what a worker sends an external guard, as JSON.
type GuardRequest struct {
	Phase     string      `json:"phase"` // GuardPhaseRequest or GuardPhaseResult
	RequestID string      `json:"request_id"`
	Server    string      `json:"server"`
	Tool      string      `json:"tool"`
	Caller    GuardCaller `json:"caller"`
	// Arguments are the call's arguments (phase request), as the caller
	// sent them or as an earlier guard modified them.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Result is the tools/call result (phase result): content,
	// structuredContent, isError.
	Result json.RawMessage `json:"result,omitempty"`
}

// GuardCaller describes the caller to a guard: never its key, nor the
// key's full hash.
type GuardCaller struct {
	// KeyID is "master", "anonymous", or the first GuardKeyIDLen hex
	// digits of the key's token (what `mcpbus audit tail --key` takes).
	KeyID    string  `json:"key_id"`
	KeyAlias string  `json:"key_alias,omitempty"`
	User     string  `json:"user_id,omitempty"`
	Team     string  `json:"team_id,omitempty"`
	Org      string  `json:"organization_id,omitempty"`
	IPClass  IPClass `json:"ip_class"`
}

// GuardKeyIDLen is how much of a key's token a guard sees.
const GuardKeyIDLen = 12

// NewGuardCaller summarises id for a guard.
func NewGuardCaller(id Identity, class IPClass) GuardCaller {
	key := id.KeyID
	if len(key) > GuardKeyIDLen {
		key = key[:GuardKeyIDLen]
	}
	return GuardCaller{KeyID: key, KeyAlias: id.Alias, User: id.User, Team: id.Team, Org: id.Org, IPClass: class}
}

// GuardReply is a guard's answer.
type GuardReply struct {
	Decision string `json:"decision"` // pass, modify or block
	Reason   string `json:"reason,omitempty"`
	// Arguments replace the call's (modify, phase request): a JSON object.
	Arguments json.RawMessage `json:"arguments,omitempty"`
	// Result replaces the call's result (modify, phase result): a JSON
	// object.
	Result json.RawMessage `json:"result,omitempty"`
}

// ParseGuardReply reads a guard's reply to a request of phase: at most
// GuardMaxReply bytes of one JSON object with known fields only, a known
// decision, and with modify the replacement the phase takes (arguments or
// result, a JSON object) and no other. The reason comes back bounded and
// without control characters. Errors say what is wrong, never quoting the
// reply beyond a short decision.
func ParseGuardReply(data []byte, phase string) (GuardReply, error) {
	var r GuardReply
	if len(data) > GuardMaxReply {
		return r, fmt.Errorf("its reply is %d bytes, over %d", len(data), GuardMaxReply)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return GuardReply{}, fmt.Errorf("its reply is not a guard reply ({decision, reason, arguments|result}): %s", Shorten(err.Error(), 120))
	}
	if d.More() {
		return GuardReply{}, errors.New("its reply holds more than one JSON value")
	}
	r.Reason = guardReason(r.Reason)
	want, other := "arguments", r.Result
	replacement := r.Arguments
	if phase == GuardPhaseResult {
		want, other, replacement = "result", r.Arguments, r.Result
	}
	switch r.Decision {
	case GuardPass, GuardBlock:
		if len(r.Arguments) > 0 || len(r.Result) > 0 {
			return GuardReply{}, fmt.Errorf("its reply %s but carries arguments or a result, which only modify may", r.Decision)
		}
	case GuardModify:
		if len(other) > 0 {
			return GuardReply{}, fmt.Errorf("its modify reply to a %s phase may replace %s only", phase, want)
		}
		if t := bytes.TrimSpace(replacement); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return GuardReply{}, fmt.Errorf("its modify reply must carry %s as a JSON object", want)
		}
	default:
		return GuardReply{}, fmt.Errorf("its reply's decision %q is not pass, modify or block", Shorten(r.Decision, 32))
	}
	return r, nil
}

// guardReason is a guard's reason as a caller may see it: control
// characters replaced, at most GuardMaxReason bytes.
func guardReason(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return Shorten(strings.TrimSpace(s), GuardMaxReason)
}

// GuardBlocked is the error of a call guard blocked in phase.
func GuardBlocked(guard, phase, reason string) *Error {
	what := "the call"
	if phase == GuardPhaseResult {
		what = "the tool's result"
	}
	if reason == "" {
		return Errorf(ErrGuardBlocked, "guard %q blocked %s", guard, what)
	}
	return Errorf(ErrGuardBlocked, "guard %q blocked %s: %s", guard, what, guardReason(reason))
}
