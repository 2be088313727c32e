package bus

import (
	"fmt"
	"strings"
)

// Per-upstream operations: drain and canary. The state lives in the server's
// record (ServerSpec.Drain, Canary*; the fields are in server_fields.go), so
// every replica of every service sees it through the servers bucket:
//
//   - drain: each worker host retires the server's workers (in-flight calls
//     finish, bounded by its drain timeout) and keeps the record; the router
//     and the ingress answer new calls to it with ErrServerDrained at once
//     (DrainedError), and an aggregated list leaves its items out and names
//     it in _meta. Undrain starts the workers again.
//   - canary: the worker holds a second upstream of the same server, the
//     canary, and sends it CanaryPercent of the calls, chosen per downstream
//     session (sessionless calls per request); its calls are counted under
//     variant="canary" in the worker metrics. Promote makes the canary the
//     server's url (command and args for stdio); off (abort) removes it.
//
// The admin API (POST /v1/mcp/server/{id}/drain, .../canary, DELETE
// .../canary, POST .../canary/promote) relays DrainRequest and CanaryRequest
// to the registry (SubjectRegistryDrain, SubjectRegistryCanary), which
// answers the changed ServerRecord. Every value from a client is checked here
// (Validate) before it goes on the bus, and again by the registry.

// Canary actions.
const (
	CanarySet     = "set"     // start a canary, or change its target or percent
	CanaryOff     = "off"     // abort: remove the canary, stable takes every call
	CanaryPromote = "promote" // the canary becomes the server's url (command, args)
)

// Bounds on what an operations request may carry.
const (
	MaxCanaryURL  = 2048
	MaxCanaryCmd  = 4096
	MaxCanaryArgs = 64
)

// DrainRequest is the body of SubjectRegistryDrain (and, without Name, of
// POST /v1/mcp/server/{id}/drain): drain true takes the server's workers off
// the bus, false starts them again.
type DrainRequest struct {
	Name  string `json:"name,omitempty"`
	Drain *bool  `json:"drain"`
}

// Validate checks a drain request; errors name the field.
func (r DrainRequest) Validate() *Error {
	if e := checkOpsName(r.Name); e != nil {
		return e
	}
	if r.Drain == nil {
		return Errorf(ErrBadRequest, "drain: required: true to drain the server, false to undrain it")
	}
	return nil
}

// CanaryRequest is the body of SubjectRegistryCanary. Action set (the REST
// POST .../canary) takes URL, or Command and Args for a stdio server, and
// Percent; a field left out keeps the stored value, so {"percent": 50}
// ramps a running canary. Off (DELETE .../canary) and promote (POST
// .../canary/promote) take nothing else.
type CanaryRequest struct {
	Name    string   `json:"name,omitempty"`
	Action  string   `json:"action,omitempty"`
	URL     *string  `json:"url,omitempty"`
	Command *string  `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	Percent *int     `json:"percent,omitempty"`
}

// Validate checks a canary request's shape and bounds; the registry checks
// the resulting record as it checks any write (the URL's scheme and host, a
// canary that fits the transport). Errors name the field.
func (r CanaryRequest) Validate() *Error {
	if e := checkOpsName(r.Name); e != nil {
		return e
	}
	switch r.Action {
	case CanarySet:
	case CanaryOff, CanaryPromote:
		if r.URL != nil || r.Command != nil || r.Args != nil || r.Percent != nil {
			return Errorf(ErrBadRequest, "canary %s takes no url, command, args or percent", r.Action)
		}
		return nil
	default:
		return Errorf(ErrBadRequest, "action: must be %s, %s or %s", CanarySet, CanaryOff, CanaryPromote)
	}
	if r.URL == nil && r.Command == nil && r.Args == nil && r.Percent == nil {
		return Errorf(ErrBadRequest, "canary: give url (command and args for a stdio server), percent, or both")
	}
	if r.URL != nil && (r.Command != nil || r.Args != nil) {
		return Errorf(ErrBadRequest, "url: give url for an HTTP or SSE server, or command and args for a stdio server, not both")
	}
	if r.URL != nil && (strings.TrimSpace(*r.URL) == "" || len(*r.URL) > MaxCanaryURL) {
		return Errorf(ErrBadRequest, "url: must be an http(s) URL of at most %d bytes", MaxCanaryURL)
	}
	if r.Command != nil && (strings.TrimSpace(*r.Command) == "" || len(*r.Command) > MaxCanaryCmd) {
		return Errorf(ErrBadRequest, "command: must be a command of at most %d bytes", MaxCanaryCmd)
	}
	if len(r.Args) > MaxCanaryArgs {
		return Errorf(ErrBadRequest, "args: at most %d arguments", MaxCanaryArgs)
	}
	for i, a := range r.Args {
		if len(a) > MaxCanaryCmd {
			return Errorf(ErrBadRequest, "args[%d]: at most %d bytes", i, MaxCanaryCmd)
		}
	}
	if r.Percent != nil && (*r.Percent < 0 || *r.Percent > 100) {
		return Errorf(ErrBadRequest, "percent: must be a whole number from 0 to 100")
	}
	return nil
}

func checkOpsName(name string) *Error {
	if !ValidToken(name) {
		return Errorf(ErrBadRequest, "server_id: must name a server (1-%d characters of A-Z a-z 0-9 _ -)", MaxTokenLen)
	}
	return nil
}

// HasCanary reports whether s has a canary upstream: a canary_url, or for
// stdio a canary_command.
func (s ServerSpec) HasCanary() bool { return s.CanaryURL != "" || s.CanaryCommand != "" }

// DrainedError is the answer to a call for s while s is drained, nil
// otherwise. The router and the ingress check it before sending anything to
// s's workers, so a drained server is refused at once and by name, never
// with a timeout or "no worker".
func DrainedError(s ServerSpec) *Error {
	if !s.Drain {
		return nil
	}
	return &Error{Kind: ErrServerDrained, Message: fmt.Sprintf("MCP server %q is drained by an operator: it takes no new calls until it is undrained", s.Name)}
}
