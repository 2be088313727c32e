package bus

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// The bodies of the per-user OAuth flow's subjects (useroauth.go). Both
// come from a browser through the ingress, unauthenticated but for the
// ticket or state they carry, so each is bounded and checked here: by the
// ingress before it publishes, by the worker when it reads.

// Bounds of what a browser brings.
const (
	// FlowSecretLen is the length of a ticket, and of a state's random
	// part: 32 random bytes, base64url without padding.
	FlowSecretLen = 43
	// MaxAuthCodeLen bounds an authorization code.
	MaxAuthCodeLen = 2048
	// MaxFlowIssuerLen bounds the iss of an authorization response.
	MaxFlowIssuerLen = 512
	// MaxFlowErrorLen bounds its error, MaxFlowErrorDescLen its description.
	MaxFlowErrorLen     = 128
	MaxFlowErrorDescLen = 512
)

// OAuthStart asks for the sign-in a ticket stands for. A ticket links the
// provider account of whoever opens it to the user it was made for, so the
// browser must show it is that user: User is who the browser is signed in
// to the gateway as (its UI session's Identity.UserKey), which must be the
// ticket's; without one, the first request (Confirm false) only names the
// ticket's account for the browser to confirm, and consumes nothing.
type OAuthStart struct {
	Ticket  string `json:"ticket"`
	User    string `json:"user,omitempty"`
	Confirm bool   `json:"confirm,omitempty"`
}

// OAuthStartAnswer is where the browser goes: the authorization server's
// authorization endpoint, with the flow's parameters; or, for a start
// not yet confirmed, the account the ticket was made for.
type OAuthStartAnswer struct {
	Redirect string `json:"redirect,omitempty"`
	Account  string `json:"account,omitempty"`
}

// AccountOfUserKey is how a page names the owner of a UserKey: the user
// id, or a key by the first 8 hex digits of its id.
func AccountOfUserKey(userKey string) string {
	if id, ok := strings.CutPrefix(userKey, "user:"); ok {
		return "user " + id
	}
	id := strings.TrimPrefix(userKey, "key:")
	if len(id) > 8 {
		id = id[:8]
	}
	return "key " + id
}

// OAuthFinish is the authorization response (the callback's query).
type OAuthFinish struct {
	State            string `json:"state"`
	Code             string `json:"code,omitempty"`
	Iss              string `json:"iss,omitempty"`
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// OAuthFinishAnswer names the server the user is now signed in to.
type OAuthFinishAnswer struct {
	Server string `json:"server"`
}

// NewFlowSecret is a ticket, or a state's random part.
func NewFlowSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// FlowState is the state of a sign-in to server: the server's name, a dot,
// the random part. The callback finds the server's workers by it; the
// random part finds the sign-in.
func FlowState(server, secret string) string { return server + "." + secret }

// FlowStateServer is the server a state names, if it is well formed.
func FlowStateServer(state string) (string, bool) {
	server, secret, ok := strings.Cut(state, ".")
	return server, ok && ValidToken(server) && validFlowSecret(secret)
}

func validFlowSecret(s string) bool {
	if len(s) != FlowSecretLen {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// Validate checks s: a ticket of the right form.
func (s *OAuthStart) Validate() *Error {
	if !validFlowSecret(s.Ticket) {
		return Errorf(ErrBadRequest, "ticket: missing or malformed: open the sign-in link exactly as the gateway gave it")
	}
	if s.User != "" && (len(s.User) > MaxUserIDLen+8 || !printable(s.User) || !(strings.HasPrefix(s.User, "user:") || strings.HasPrefix(s.User, "key:"))) {
		return Errorf(ErrBadRequest, "user: not a user key")
	}
	return nil
}

// printable reports whether s is printable ASCII (spaces allowed).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// Validate checks f against the bounds the bus carries; messages never
// quote a code.
func (f *OAuthFinish) Validate() *Error {
	if _, ok := FlowStateServer(f.State); !ok {
		return Errorf(ErrBadRequest, "state: missing or malformed: this is not the answer to a sign-in the gateway started")
	}
	switch {
	case len(f.Code) > MaxAuthCodeLen || !printable(f.Code) || strings.Contains(f.Code, " "):
		return Errorf(ErrBadRequest, "code: malformed (at most %d printable characters)", MaxAuthCodeLen)
	case len(f.Iss) > MaxFlowIssuerLen || !printable(f.Iss):
		return Errorf(ErrBadRequest, "iss: malformed (at most %d printable characters)", MaxFlowIssuerLen)
	case len(f.Error) > MaxFlowErrorLen || !printable(f.Error):
		return Errorf(ErrBadRequest, "error: malformed (at most %d printable characters)", MaxFlowErrorLen)
	case len(f.ErrorDescription) > MaxFlowErrorDescLen || !printable(f.ErrorDescription):
		return Errorf(ErrBadRequest, "error_description: malformed (at most %d printable characters)", MaxFlowErrorDescLen)
	case f.Code == "" && f.Error == "":
		return Errorf(ErrBadRequest, "code: missing, and no error either")
	}
	return nil
}
