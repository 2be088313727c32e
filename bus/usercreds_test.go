package bus

import (
	"strings"
	"testing"
	"time"
)

func TestUserCredentialBounds(t *testing.T) {
	future := time.Now().Add(time.Hour)
	for name, tc := range map[string]struct {
		p    UserCredentialPut
		want string
	}{
		"ok":            {UserCredentialPut{Server: "gh", Credential: "ghp_abc", ExpiresAt: &future}, ""},
		"scheme inside": {UserCredentialPut{Server: "gh", Credential: "Bearer abc"}, ""},
		"no server":     {UserCredentialPut{Credential: "tok-123456"}, "server_id: required"},
		"bad server":    {UserCredentialPut{Server: "a.b", Credential: "tok-123456"}, "not a server name"},
		"empty":         {UserCredentialPut{Server: "gh"}, "credential: required"},
		"too long":      {UserCredentialPut{Server: "gh", Credential: strings.Repeat("x", MaxUserCredentialLen+1)}, "at most 16384"},
		"line break":    {UserCredentialPut{Server: "gh", Credential: "a\r\nX-Evil: 1"}, "printable"},
		"tab":           {UserCredentialPut{Server: "gh", Credential: "a\tb"}, "printable"},
		"non-ASCII":     {UserCredentialPut{Server: "gh", Credential: "tökén"}, "printable"},
		"edge space":    {UserCredentialPut{Server: "gh", Credential: "abc "}, "printable"},
		"zero expiry":   {UserCredentialPut{Server: "gh", Credential: "tok-123456", ExpiresAt: &time.Time{}}, "expires_at"},
	} {
		e := tc.p.Validate()
		if tc.want == "" && e != nil || tc.want != "" && (e == nil || !strings.Contains(e.Message, tc.want)) {
			t.Errorf("%s: %v, want %q", name, e, tc.want)
		}
		if e != nil && tc.p.Credential != "" && strings.Contains(e.Message, tc.p.Credential) {
			t.Errorf("%s: the message quotes the credential", name)
		}
	}
	for name, tc := range map[string]struct {
		r    UserCredentialRef
		want string
	}{
		"own":          {UserCredentialRef{}, ""},
		"user":         {UserCredentialRef{Server: "gh", UserID: "alice@example.com"}, ""},
		"bad user":     {UserCredentialRef{UserID: "a b"}, "user_id"},
		"long user":    {UserCredentialRef{UserID: strings.Repeat("u", MaxUserIDLen+1)}, "user_id"},
		"bad server":   {UserCredentialRef{Server: "$KV.x"}, "not a server name"},
		"all, no srv":  {UserCredentialRef{AllUsers: true}, "all_users"},
		"all and user": {UserCredentialRef{Server: "gh", AllUsers: true, UserID: "a"}, "all_users"},
	} {
		e := tc.r.Validate()
		if tc.want == "" && e != nil || tc.want != "" && (e == nil || !strings.Contains(e.Message, tc.want)) {
			t.Errorf("%s: %v, want %q", name, e, tc.want)
		}
	}
}

// Keys are KV keys whatever the user id holds, one per user and server, and
// a record names its own key.
func TestUserCredentialKeyAndRecord(t *testing.T) {
	k := UserCredentialKey("user:alice smith/ä.*>", "gh")
	if !validKey(k) || ServerOfUserCredentialKey(k) != "gh" || !strings.HasPrefix(k, UserCredentialOwnerPrefix("user:alice smith/ä.*>")) {
		t.Fatalf("key %q", k)
	}
	if UserCredentialKey("user:a", "gh") == UserCredentialKey("key:a", "gh") || UserCredentialKey("user:a", "gh") == UserCredentialKey("user:a", "gl") {
		t.Fatal("keys collide")
	}
	if _, err := DecodeUserCredential(UserCredentialKey("user:bob", "gh"), []byte(`{"user":"user:alice","server":"gh","access_token":"x"}`)); err == nil {
		t.Fatal("a record under another user's key was read")
	}
}

// Tokens are sealed bound to their key: plain text is never stored, a
// sealed value moved to another user's record does not open, and a process
// without the key cannot store one.
func TestUserCredentialSealing(t *testing.T) {
	sk, _ := NewSecretKey("0123456789abcdef-test")
	c := UserCredential{User: "user:alice", Server: "gh", Kind: CredentialBYOK, AccessToken: "ghp_PLAIN", RefreshToken: "r_PLAIN"}
	s, err := sk.SealUserCredential(c)
	if err != nil || strings.Contains(s.AccessToken+s.RefreshToken, "PLAIN") || !IsSealed(s.AccessToken) || !IsSealed(s.RefreshToken) {
		t.Fatalf("sealed: %+v, %v", s, err)
	}
	o, err := sk.OpenUserCredential(s)
	if err != nil || o.AccessToken != "ghp_PLAIN" || o.RefreshToken != "r_PLAIN" {
		t.Fatalf("opened: %+v, %v", o, err)
	}
	moved := s
	moved.User = "user:mallory"
	if _, err := sk.OpenUserCredential(moved); err == nil {
		t.Fatal("a sealed token opened under another user")
	}
	if _, err := sk.OpenUserCredential(c); err == nil {
		t.Fatal("a plain-text token was accepted")
	}
	var none *SecretKey
	if _, err := none.SealUserCredential(c); err == nil || !strings.Contains(err.Error(), "MCPBUS_SALT_KEY") {
		t.Fatalf("no key: %v", err)
	}
}
