package bus

import (
	"strings"
	"unicode/utf8"
)

// Bounds on what a caller can put into a NATS subject, a KV key or an
// envelope header. nats-server closes a connection whose protocol line is
// longer than its max_control_line (4 KiB by default): a subject made from an
// unbounded client value would take the service that publishes it off the
// bus. So every value from a client that becomes part of a subject or a
// header passes one of these checks first, and the subject builders of this
// package accept nothing else.
const (
	// MaxTokenLen bounds one subject token or KV key made from caller input
	// (a session id, a server name, a team id).
	MaxTokenLen = 128
	// MaxSelection bounds the servers one request may select
	// (x-mcp-servers: a,b,...).
	MaxSelection = 64
	// MaxHeaderValue bounds one envelope header value made from caller input
	// (a forwarded header, the client's capabilities, an error message).
	MaxHeaderValue = 16 << 10
	// MaxIDLen bounds a JSON-RPC id (its JSON text).
	MaxIDLen = 1024
	// A downstream session's record (BucketSessions) stays small, so no
	// caller can fill the session store: at most MaxSubscriptions resource
	// subscriptions of URIs of at most MaxURILen bytes, and at most
	// MaxSessionsPerKey open sessions per virtual key.
	MaxSubscriptions  = 64
	MaxURILen         = 2048
	MaxSessionsPerKey = 500
)

// ValidToken reports whether s can be one NATS subject token and one KV key:
// 1 to MaxTokenLen characters of A-Z a-z 0-9 _ -. Session ids, server names
// and team ids all have this form.
func ValidToken(s string) bool {
	if s == "" || len(s) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CheckSessionID checks a session id a client sent (where names the header or
// parameter) before it is looked up: ids this gateway issues are tokens
// (ValidToken), and anything else cannot name a session.
func CheckSessionID(sid, where string) *Error {
	if ValidToken(sid) {
		return nil
	}
	return Errorf(ErrBadRequest, "%s is not a session id this gateway issued (at most %d characters of A-Z a-z 0-9 _ -); send initialize to start a session", where, MaxTokenLen)
}

// CheckSelection checks the server names a request selects (where names the
// header, query parameter or path): each must be a token, and there may be at
// most MaxSelection of them. Whether they exist is the router's question.
func CheckSelection(names []string, where string) *Error {
	if len(names) > MaxSelection {
		return Errorf(ErrBadRequest, "%s selects %d servers; at most %d may be selected", where, len(names), MaxSelection)
	}
	for _, n := range names {
		if !ValidToken(n) {
			return Errorf(ErrUnknownServer, "%s: %q is not a server name (at most %d characters of A-Z a-z 0-9 _ -)", where, Shorten(n, 64), MaxTokenLen)
		}
	}
	return nil
}

// ValidHeaderValue reports whether v may travel as an envelope header value:
// at most MaxHeaderValue bytes, valid UTF-8, and no control characters (NATS
// headers are line based).
func ValidHeaderValue(v string) bool {
	if len(v) > MaxHeaderValue || !utf8.ValidString(v) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Shorten cuts s to at most n bytes (on a rune boundary), marking the cut, so
// a caller's value quoted in an error or a log line stays bounded.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// headerSafe returns v as it may travel in a header: control characters
// replaced and the length bounded. For values the gateway itself composes
// from caller input (error messages), where refusing is not an option.
func headerSafe(v string) string {
	if ValidHeaderValue(v) {
		return v
	}
	v = strings.ToValidUTF8(v, "?")
	v = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	return Shorten(v, MaxHeaderValue-len("…"))
}
