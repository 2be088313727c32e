package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Per-user upstream credentials: a server with is_byok takes no shared
// credential; each user stores their own (bring your own key), and the
// worker sends the caller's on the caller's calls. Credentials belong to a
// user and a server: Identity.UserKey() ("user:<id>", or "key:<key id>" for a
// key without a user), so two keys of one user share theirs, as in LiteLLM.
//
// The registry writes the bucket (it holds the secret key that seals them,
// and the server records that say who may use which server); workers read
// their servers' keys with MSG.GET and hear of every change on the keys'
// subjects (no consumer: natsauth.go). The ingress only relays the REST API
// to the registry, with the caller's envelope.

// BucketUserCredentials holds one UserCredential per user and server, under
// UserCredentialKey.
const BucketUserCredentials = "mcpbus_user_credentials"

// The subjects of the user credential API, answered by the registry: each
// request carries the caller's envelope (headers) and a body below.
const (
	// SubjectUserCredPut takes a UserCredentialPut -> UserCredentialInfo.
	SubjectUserCredPut = Root + ".usercreds.put"
	// SubjectUserCredList takes a UserCredentialRef -> UserCredentialList.
	SubjectUserCredList = Root + ".usercreds.list"
	// SubjectUserCredDelete takes a UserCredentialRef -> UserCredentialInfo.
	SubjectUserCredDelete = Root + ".usercreds.delete"
	// SubjectUserCredAll matches the three.
	SubjectUserCredAll = Root + ".usercreds.*"
)

// Kinds of user credential.
const (
	// CredentialBYOK is a token the user stored themselves.
	CredentialBYOK = "byok"
	// CredentialOAuth2 is a token the gateway obtained for the user with the
	// authorization-code flow (useroauth.go).
	CredentialOAuth2 = "oauth2"
)

// MaxUserCredentialLen bounds a stored token.
const MaxUserCredentialLen = 16 << 10

// ErrUserCredentialRequired answers a call to a server that takes per-user
// credentials by a caller who has stored none: nothing was sent upstream;
// the message says how to add one.
var ErrUserCredentialRequired = Kind{"MCPBUS_USER_CREDENTIAL_REQUIRED", -32044, http.StatusOK, http.StatusForbidden}

// UserCredential is the record stored under UserCredentialKey: what the
// worker needs to call the upstream as the user, and what a token refresh
// needs. AccessToken and RefreshToken are sealed at rest (SealUserCredential).
type UserCredential struct {
	// User is the owner's UserKey and Server the server: a record names its
	// key (DecodeUserCredential), so a value written under another key is
	// refused.
	User   string `json:"user"`
	Server string `json:"server"`
	Kind   string `json:"kind"`
	// AccessToken is what goes upstream, in the server's auth_type header.
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// TokenType is the OAuth token_type ("Bearer"); empty for a stored key.
	TokenType  string     `json:"token_type,omitempty"`
	Scopes     []string   `json:"scopes,omitempty"`
	ObtainedAt time.Time  `json:"obtained_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	// RefreshingSince, on an oauth2 record, says a worker replica took it
	// to refresh (with a compare-and-set on its revision): the others wait
	// for the new record instead of refreshing too (useroauth.go).
	RefreshingSince *time.Time `json:"refreshing_since,omitempty"`
}

// Expired reports whether c's expiry has passed at now.
func (c UserCredential) Expired(now time.Time) bool {
	return c.ExpiresAt != nil && !now.Before(*c.ExpiresAt)
}

// UserCredentialKey is where user's credential for server lives: the
// SHA-256 of the UserKey (any characters, and no user id on a subject), a
// dot, the server name. Workers of one server read "*.<server>".
func UserCredentialKey(userKey, server string) string {
	sum := sha256.Sum256([]byte(userKey))
	return hex.EncodeToString(sum[:]) + "." + server
}

// UserCredentialOwnerPrefix is the start of every key of userKey's
// credentials ("<hash>."), to list them.
func UserCredentialOwnerPrefix(userKey string) string { return UserCredentialKey(userKey, "") }

// ServerOfUserCredentialKey is the server name in a key ("" if none).
func ServerOfUserCredentialKey(key string) string {
	_, server, ok := strings.Cut(key, ".")
	if !ok {
		return ""
	}
	return server
}

// sealed fields' names in the sealing's additional data.
const (
	fieldAccessToken  = "access_token"
	fieldRefreshToken = "refresh_token"
)

// SealUserCredential returns c with its tokens sealed, bound to its key and
// field. Without a key it refuses: a user's token is never stored in plain
// text.
func (k *SecretKey) SealUserCredential(c UserCredential) (UserCredential, error) {
	if k == nil {
		return c, fmt.Errorf("per-user credentials are stored sealed, and this registry has no key: set %s (the same value on every registry and worker process)", SecretKeyEnv[0])
	}
	key := UserCredentialKey(c.User, c.Server)
	c.AccessToken = k.seal(BucketUserCredentials, key+"."+fieldAccessToken, c.AccessToken)
	if c.RefreshToken != "" {
		c.RefreshToken = k.seal(BucketUserCredentials, key+"."+fieldRefreshToken, c.RefreshToken)
	}
	return c, nil
}

// OpenUserCredential opens what SealUserCredential sealed. A token that is
// not sealed is refused: only the registry and the server's workers write
// this bucket, and they seal.
func (k *SecretKey) OpenUserCredential(c UserCredential) (UserCredential, error) {
	if k == nil {
		return c, fmt.Errorf("per-user credentials are sealed and this process has no key: set %s", SecretKeyEnv[0])
	}
	key := UserCredentialKey(c.User, c.Server)
	var err error
	if !IsSealed(c.AccessToken) {
		return c, errors.New("a stored user credential is not sealed: not the registry's")
	}
	if c.AccessToken, err = k.open(BucketUserCredentials, key+"."+fieldAccessToken, c.AccessToken); err != nil {
		return c, err
	}
	if c.RefreshToken != "" {
		if !IsSealed(c.RefreshToken) {
			return c, errors.New("a stored user credential is not sealed: not the registry's")
		}
		if c.RefreshToken, err = k.open(BucketUserCredentials, key+"."+fieldRefreshToken, c.RefreshToken); err != nil {
			return c, err
		}
	}
	return c, nil
}

// DecodeUserCredential reads the record stored under key; one that does not
// name its key is refused (DecodeServerRecord says why).
func DecodeUserCredential(key string, value []byte) (UserCredential, error) {
	var c UserCredential
	if err := json.Unmarshal(value, &c); err != nil {
		return UserCredential{}, fmt.Errorf("unreadable: %w", err)
	}
	if c.User == "" || !ValidToken(c.Server) || UserCredentialKey(c.User, c.Server) != key {
		return UserCredential{}, errors.New("it does not name its key: not the registry's")
	}
	return c, nil
}

// userCredentialsBucket is the per-user credentials bucket: the stream
// EnsureUserCredentialsBucket makes.
var userCredentialsBucket = kvNoDirect{
	Bucket:      BucketUserCredentials,
	Description: "mcpbus per-user upstream credentials (sealed)",
	Storage:     jetstream.FileStorage,
	MaxMsgSize:  4 * MaxUserCredentialLen,
	MaxMsgs:     -1,
	Discard:     jetstream.DiscardNew,
}

// EnsureUserCredentialsBucket creates (or updates) the bucket, on the file
// store (a user stores a key once; a restart must not lose it), one value
// per key. Like the OAuth2 token bucket it has no direct gets: the workers
// read it with MSG.GET (msgget.go), and a later token refresh makes them
// writers.
func EnsureUserCredentialsBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	if err := ensureKVNoDirect(ctx, js, userCredentialsBucket, p); err != nil {
		return nil, err
	}
	return js.KeyValue(ctx, BucketUserCredentials)
}
