package bus

import (
	"strings"
	"time"
)

// The bodies of the user credential subjects (usercreds.go). Each comes from
// a client through the ingress, so each is checked here, where the ingress
// checks it before publishing and the registry again when it reads it.

// UserCredentialPut stores the caller's own credential for a server. There is
// no user field: a credential is always stored for the caller (an admin
// cannot write someone else's, as in LiteLLM).
type UserCredentialPut struct {
	Server string `json:"server"`
	// Credential is LiteLLM's name for the token.
	Credential string     `json:"credential"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// UserCredentialRef names credentials to list or delete: the caller's own,
// or with UserID (the master key only) that user's. List: Server empty means
// every server; with Server and AllUsers (the master key only), every user
// who has one for it.
type UserCredentialRef struct {
	Server   string `json:"server,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	AllUsers bool   `json:"all_users,omitempty"`
}

// UserCredentialInfo describes one stored credential, never its token.
type UserCredentialInfo struct {
	Server string `json:"server_id"`
	// UserID is the owner: a user id, or for a key without a user
	// "key:<key id>" (shown to the master key's lists).
	UserID     string     `json:"user_id,omitempty"`
	Kind       string     `json:"kind"`
	TokenType  string     `json:"token_type,omitempty"`
	Scopes     []string   `json:"scopes,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	Expired    bool       `json:"expired,omitempty"`
	HasRefresh bool       `json:"has_refresh_token,omitempty"`
	Revision   uint64     `json:"revision,omitempty"`
}

// UserCredentialList answers a list.
type UserCredentialList struct {
	Credentials []UserCredentialInfo `json:"credentials"`
}

// Info describes c (stored at revision rev), without its tokens.
func (c UserCredential) Info(rev uint64, now time.Time) UserCredentialInfo {
	return UserCredentialInfo{Server: c.Server, UserID: UserIDOfKey(c.User), Kind: c.Kind, TokenType: c.TokenType,
		Scopes: c.Scopes, CreatedAt: c.ObtainedAt, ExpiresAt: c.ExpiresAt, Expired: c.Expired(now),
		HasRefresh: c.RefreshToken != "", Revision: rev}
}

// UserIDOfKey is how a UserKey is shown: the user id, or the key form as it is.
func UserIDOfKey(userKey string) string {
	if id, ok := strings.CutPrefix(userKey, "user:"); ok {
		return id
	}
	return userKey
}

// ValidUserCredential reports whether s can be stored as a token: 1 to
// MaxUserCredentialLen bytes of printable ASCII (a space inside, as in
// "user:pass word" or "Scheme value", but not at either end), so it can go
// into a header without injecting one.
func ValidUserCredential(s string) bool {
	if s == "" || len(s) > MaxUserCredentialLen || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func userCredServerError(s string) *Error {
	if s == "" {
		return Errorf(ErrBadRequest, "server_id: required")
	}
	return Errorf(ErrBadRequest, "server_id: %q is not a server name (1-%d of A-Z a-z 0-9 _ -)", Shorten(s, 64), MaxTokenLen)
}

// Validate checks p against the bounds the bus carries. Messages never
// quote the credential.
func (p *UserCredentialPut) Validate() *Error {
	switch {
	case !ValidToken(p.Server):
		return userCredServerError(p.Server)
	case p.Credential == "":
		return Errorf(ErrBadRequest, "credential: required: the token to send upstream as you")
	case len(p.Credential) > MaxUserCredentialLen:
		return Errorf(ErrBadRequest, "credential: %d bytes; at most %d", len(p.Credential), MaxUserCredentialLen)
	case !ValidUserCredential(p.Credential):
		return Errorf(ErrBadRequest, "credential: must be printable ASCII, without line breaks, control characters or spaces at either end")
	case p.ExpiresAt != nil && (p.ExpiresAt.IsZero() || p.ExpiresAt.Year() > 9999):
		return Errorf(ErrBadRequest, "expires_at: must be a time (RFC 3339)")
	}
	return nil
}

// Validate checks r against the bounds the bus carries.
func (r *UserCredentialRef) Validate() *Error {
	switch {
	case r.Server != "" && !ValidToken(r.Server):
		return userCredServerError(r.Server)
	case r.UserID != "" && !ValidUserID(r.UserID):
		return Errorf(ErrBadRequest, "user_id: must be 1-%d printable characters without spaces", MaxUserIDLen)
	case r.AllUsers && (r.Server == "" || r.UserID != ""):
		return Errorf(ErrBadRequest, "all_users: lists one server's credentials (give server_id, not user_id)")
	}
	return nil
}
