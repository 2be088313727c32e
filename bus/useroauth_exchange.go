package bus

import (
	"strings"
	"time"
)

// Token exchange (RFC 8693, on behalf of): a server with auth_type oauth2
// and oauth2_flow token_exchange calls its upstream as each caller with a
// token its authorization server issues for the caller's own OAuth access
// token. The caller's token is at the ingress, and the exchange client's
// secret at the server's workers, so the ingress hands the token to a
// worker of each such server the caller may use (ToolOAuthExchange), which
// exchanges it, stores the result as the caller's credential and forgets
// the token. That request is the one place a caller's token travels on the
// bus: to one server's workers, in a request body, never stored or logged.

// ToolOAuthExchange carries a caller's access token to server's workers,
// which exchange it (OAuthExchange -> OAuthExchangeAnswer).
func ToolOAuthExchange(server string) string { return ToolGroup(server) + ".oauth.exchange" }

// OAuth2FlowTokenExchange is the oauth2_flow of a server whose callers'
// tokens are exchanged for the upstream's.
const OAuth2FlowTokenExchange = "token_exchange"

// TokenExchange reports whether s exchanges each caller's token.
func (s ServerSpec) TokenExchange() bool {
	return s.AuthType == "oauth2" && s.OAuth2Flow == OAuth2FlowTokenExchange
}

// OAuthExchange asks for User's token to be exchanged.
type OAuthExchange struct {
	User         string `json:"user"`
	SubjectToken string `json:"subject_token"`
}

// OAuthExchangeAnswer says until when the exchanged token is good (nil:
// the provider gave no expiry).
type OAuthExchangeAnswer struct {
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// MaxSubjectTokenLen bounds a token to exchange (as the ingress bounds a
// bearer token).
const MaxSubjectTokenLen = 8 << 10

// Validate checks the user key and the token's form.
func (x *OAuthExchange) Validate() *Error {
	if len(x.User) > MaxUserIDLen+8 || !printable(x.User) || !(strings.HasPrefix(x.User, "user:") || strings.HasPrefix(x.User, "key:")) {
		return Errorf(ErrBadRequest, "token exchange: user: not a user key")
	}
	if x.SubjectToken == "" || len(x.SubjectToken) > MaxSubjectTokenLen || !ValidUserCredential(x.SubjectToken) || strings.Contains(x.SubjectToken, " ") {
		return Errorf(ErrBadRequest, "token exchange: subject_token: 1-%d printable characters without spaces", MaxSubjectTokenLen)
	}
	return nil
}
