package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Per-user upstream OAuth (auth_type oauth2, oauth2_flow
// authorization_code): the gateway signs each user in to the upstream's
// authorization server and keeps the user's tokens in the user credential
// bucket (usercreds.go, kind CredentialOAuth2), refreshing them there.
//
// The flow lives with the server's workers, the only holders of its client
// secret: a caller without a token is refused with a URL-mode elicitation
// (ErrURLElicitationRequired) naming <public>/oauth/authorize/<server>?ticket=;
// the ticket is one-time and stands for the caller, so the browser needs no
// gateway key. The ingress relays the two browser requests to the server's
// workers (ToolOAuthStart, ToolOAuthFinish), which keep what is between
// them in BucketOAuthFlows: tickets and pending sign-ins, each under the
// SHA-256 of its secret, with a 10-minute life. Workers of a server write
// only that server's keys there and in the user credential bucket
// (natsauth.go).

// BucketOAuthFlows holds the tickets and pending sign-ins of the per-user
// OAuth flow (OAuthFlowRecord), in memory, for OAuthFlowTTL.
const BucketOAuthFlows = "mcpbus_oauth_flows"

// OAuthFlowTTL is how long a ticket and a pending sign-in live.
const OAuthFlowTTL = 10 * time.Minute

// The kinds of flow record.
const (
	FlowTicket  = "ticket"
	FlowPending = "pending"
)

// OAuthFlowKey is where the record of secret (a ticket or a state) of kind
// lives: "<server>.<t|s>.<sha256 hex>". The secret itself is never stored.
func OAuthFlowKey(server, kind, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	k := "t"
	if kind == FlowPending {
		k = "s"
	}
	return server + "." + k + "." + hex.EncodeToString(sum[:])
}

// OAuthFlowRecord is a ticket (who asked, for which server) or a pending
// sign-in (also its PKCE verifier, sealed).
type OAuthFlowRecord struct {
	Kind    string    `json:"kind"`
	User    string    `json:"user"`
	Server  string    `json:"server"`
	Created time.Time `json:"created"`
	// Verifier is the PKCE verifier of a pending sign-in, sealed.
	Verifier string `json:"verifier,omitempty"`
}

// SealFlow seals r's verifier under key.
func (k *SecretKey) SealFlow(key string, r OAuthFlowRecord) (OAuthFlowRecord, error) {
	if k == nil {
		return r, fmt.Errorf("per-user credentials are stored sealed, and this process has no key: set %s", SecretKeyEnv[0])
	}
	if r.Verifier != "" {
		r.Verifier = k.seal(BucketOAuthFlows, key+".verifier", r.Verifier)
	}
	return r, nil
}

// OpenFlow opens what SealFlow sealed.
func (k *SecretKey) OpenFlow(key string, r OAuthFlowRecord) (OAuthFlowRecord, error) {
	if k == nil {
		return r, fmt.Errorf("per-user credentials are sealed and this process has no key: set %s", SecretKeyEnv[0])
	}
	if r.Verifier == "" {
		return r, nil
	}
	if !IsSealed(r.Verifier) {
		return r, errors.New("a pending sign-in's verifier is not sealed")
	}
	v, err := k.open(BucketOAuthFlows, key+".verifier", r.Verifier)
	r.Verifier = v
	return r, err
}

// DecodeOAuthFlow reads the record under key: one of another kind, server
// or without an owner is refused.
func DecodeOAuthFlow(key, server, kind string, value []byte) (OAuthFlowRecord, error) {
	var r OAuthFlowRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return r, fmt.Errorf("unreadable: %w", err)
	}
	if r.Kind != kind || r.Server != server || r.User == "" {
		return OAuthFlowRecord{}, errors.New("it is not a " + kind + " of this server")
	}
	return r, nil
}

// oauthFlowsBucket is the per-user OAuth flows bucket: the stream
// EnsureOAuthFlowsBucket makes.
var oauthFlowsBucket = kvNoDirect{
	Bucket:      BucketOAuthFlows,
	Description: "mcpbus per-user OAuth sign-ins in progress (tickets, pending states)",
	Storage:     jetstream.MemoryStorage,
	MaxMsgSize:  8 << 10,
	MaxMsgs:     -1,
	MaxAge:      OAuthFlowTTL,
	Discard:     jetstream.DiscardOld,
}

// EnsureOAuthFlowsBucket creates (or updates) the flows bucket: in memory
// (a sign-in in progress may be lost on a restart: the user starts again),
// each record living OAuthFlowTTL. Workers read it with MSG.GET.
func EnsureOAuthFlowsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	return ensureKVNoDirect(ctx, js, oauthFlowsBucket, p)
}

// ToolOAuthStart carries a browser's ticket to server's workers, which
// answer where to send the browser (OAuthStart -> OAuthStartAnswer).
func ToolOAuthStart(server string) string { return ToolGroup(server) + ".oauth.start" }

// ToolOAuthFinish carries the authorization server's answer (the
// callback's query) to server's workers, which store the user's tokens
// (OAuthFinish -> OAuthFinishAnswer).
func ToolOAuthFinish(server string) string { return ToolGroup(server) + ".oauth.finish" }

// ErrURLElicitationRequired answers a call to a per-user OAuth server by a
// caller who has not signed in there (or whose sign-in was revoked): the
// MCP 2025-11-25 URLElicitationRequiredError, whose data lists the URL to
// open (Error.Elicitation). Nothing was sent upstream.
var ErrURLElicitationRequired = Kind{"MCPBUS_URL_ELICITATION_REQUIRED", -32042, http.StatusOK, http.StatusForbidden}

// URLElicitation is the one URL-mode elicitation a ErrURLElicitationRequired
// carries. It travels on the bus in two headers, checked when read.
type URLElicitation struct {
	ID  string
	URL string
}

// The headers carrying Error.Elicitation (reply.go, errors.go).
const (
	HeaderElicitationID  = "Mcpbus-Elicitation-Id"
	HeaderElicitationURL = "Mcpbus-Elicitation-Url"
)

// MaxElicitationURLLen bounds an elicitation's URL.
const MaxElicitationURLLen = 2048

// Valid reports whether u may travel: an id of 1-64 token characters and an
// http(s) URL of printable ASCII.
func (u *URLElicitation) Valid() bool {
	if u == nil || len(u.ID) == 0 || len(u.ID) > 64 || !ValidToken(u.ID) || len(u.URL) > MaxElicitationURLLen {
		return false
	}
	for i := 0; i < len(u.URL); i++ {
		if c := u.URL[i]; c <= 0x20 || c > 0x7e {
			return false
		}
	}
	return len(u.URL) > 8 && (u.URL[:7] == "http://" || u.URL[:8] == "https://")
}

// elicitationData is the JSON-RPC error data of e's elicitation, or nil.
func elicitationData(e *Error) []map[string]any {
	if e.Elicitation == nil || !e.Elicitation.Valid() {
		return nil
	}
	return []map[string]any{{"mode": "url", "elicitationId": e.Elicitation.ID, "url": e.Elicitation.URL, "message": e.Message}}
}
