package bus

import "time"

// The admin UI's sign-in sessions (ingress/ui_session.go). A session is
// made by signing in with a key; the browser holds only a random session
// id, in an HttpOnly, SameSite=Strict cookie. The ingress keeps, under the
// SHA-256 of that id, the caller's key hash (never the key) and the
// session's CSRF token, in a KV bucket every ingress replica shares, so a
// session signed in on one replica works on all of them and signing out
// ends it everywhere.
const (
	BucketUISessions = "mcpbus_ui_sessions"
	// UISessionTTL is how long a UI session lasts from sign-in.
	UISessionTTL = 12 * time.Hour
	// UISessionCookie names the cookie; UICSRFHeader the header every
	// cookie-authenticated request that changes something must carry.
	UISessionCookie = "mcpbus_ui"
	UICSRFHeader    = "X-Csrf-Token"
)

// UISession is one session's record.
type UISession struct {
	// KeyHash is the caller's key, hashed (HashKey): every request of the
	// session is verified with it, so a revoked or blocked key ends it.
	KeyHash string `json:"key_hash,omitempty"`
	// OAuth is who the session signed in as with the identity provider
	// (no key): every request is verified as that user, with the team auth
	// chose at sign-in.
	OAuth   *OAuthCaller `json:"oauth,omitempty"`
	CSRF    string       `json:"csrf"`
	Expires time.Time    `json:"expires"`
}

// WorkerStats is the data of a tool worker's rpc endpoint in its micro
// stats ($SRV.STATS): the calls the replica runs now.
type WorkerStats struct {
	InFlight int `json:"in_flight"`
}
