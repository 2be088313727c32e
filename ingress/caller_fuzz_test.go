package ingress

import (
	"net/http"
	"strings"
	"testing"
	"unicode"
)

// FuzzCallerKey: the gateway key a client sent (caller.go callerKey), from
// x-litellm-api-key (with or without "Bearer ") or Authorization: Bearer:
// never a panic; a key returned has no spaces or control characters and is
// a part of one of the headers; and a non-blank x-litellm-api-key always
// wins over Authorization.
func FuzzCallerKey(f *testing.F) {
	long := strings.Repeat("k", 5000)
	for _, s := range [][2]string{
		{"", ""},
		{"", "Bearer sk-1"},
		{"", "bearer sk-1"},
		{"", "BEARER sk-1"},
		{"", "  Bearer   sk-1  "},
		{"", "Basic dXNlcjpwYXNz"},
		{"", "sk-1"},
		{"", "Bearer "},
		{"", "Bearer"},
		{"sk-2", ""},
		{"Bearer sk-2", ""},
		{"bearer sk-2", ""},
		{"  sk-2 ", ""},
		{"Bearer ", ""},
		{"bearer", ""},
		{"sk-litellm", "Bearer oauth-token"},
		{"sk-litellm", "Basic dXNlcjpwYXNz"},
		{"   ", "Bearer sk-1"},
		{long, "Bearer " + long},
		{"\u00a0sk-2\u0085", "Bearer \u2028sk-1"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, apiKey, authorization string) {
		r := &http.Request{Method: http.MethodPost, Header: http.Header{}}
		if apiKey != "" {
			r.Header.Set("X-Litellm-Api-Key", apiKey)
		}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		key := callerKey(r)
		if key == "" {
			return
		}
		if i := strings.IndexFunc(key, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
			t.Fatalf("x-litellm-api-key %q, Authorization %q: the key %q has the space or control character %q", apiKey, authorization, key, []rune(key[i:])[0])
		}
		if strings.TrimSpace(apiKey) != "" {
			if !strings.Contains(apiKey, key) {
				t.Fatalf("x-litellm-api-key %q: the key %q is not from it", apiKey, key)
			}
		} else if !strings.Contains(authorization, key) {
			t.Fatalf("Authorization %q: the key %q is not from it", authorization, key)
		}
	})
}
