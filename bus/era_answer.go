package bus

import (
	"encoding/json"
	"net/http"
	"time"
)

// ModernAnswer turns a JSON-RPC response to a stateless-era request (as the
// router or a worker answered it, in the older revisions' terms) into what
// MCP 2026-07-28 says the client gets, and the HTTP status of a JSON
// answer carrying it:
//
//   - a result gets "resultType":"complete" unless it says otherwise, and
//     the results the spec makes cacheable (CacheableMethod) get cache hints
//     when they have none: "ttlMs":0 and "cacheScope":"private", which tell
//     a client it may not reuse them (mcpbus knows no better yet);
//   - an error mcpbus made (data.mcpbus_code) gets its modern code
//     (Kind.ModernRPC); an older upstream's -32002 (resource not found)
//     becomes -32602, which the revision uses instead;
//   - the status follows the error code (ModernStatus), else 200.
//
// A body it cannot read is returned as it is, with 200.
func ModernAnswer(body []byte, method string) (int, []byte) {
	id, _, _ := Field(body, "id")
	if result, ok, _ := Field(body, "result"); ok {
		if out, changed := completeResult(result, CacheableMethod(method)); changed {
			return http.StatusOK, ResultResponse(id, out)
		}
		return http.StatusOK, body
	}
	errObj, ok, _ := Field(body, "error")
	if !ok {
		return http.StatusOK, body
	}
	var e map[string]json.RawMessage
	var code int
	if json.Unmarshal(errObj, &e) != nil || json.Unmarshal(e["code"], &code) != nil {
		return http.StatusOK, body
	}
	newCode := code
	switch {
	case code == -32002:
		newCode = -32602
	case ownCode(code):
		if k, ok := catalog[mcpbusCode(e["data"])]; ok && k.RPC == code {
			newCode = k.ModernRPC()
		}
	}
	if newCode != code {
		e["code"], _ = json.Marshal(newCode)
		errObj, _ = json.Marshal(e)
		body = RawErrorResponse(id, errObj)
	}
	return ModernStatus(newCode, http.StatusOK), body
}

// mcpbusCode is data.mcpbus_code of an error's data, or "".
func mcpbusCode(data json.RawMessage) string {
	s, _, _ := StringField(data, "mcpbus_code")
	return s
}

// CacheableMethod reports whether method's complete result carries ttlMs
// and cacheScope in the stateless era (spec server/utilities/caching).
func CacheableMethod(method string) bool {
	switch method {
	case MethodServerDiscover, MethodToolsList, MethodPromptsList, MethodResourcesList,
		MethodResourcesTemplatesList, MethodResourcesRead:
		return true
	}
	return false
}

// completeResult adds what a stateless-era result must carry and lacks:
// resultType, and for cacheable ones the cache hints. changed is false when
// nothing was missing (or result is not an object).
func completeResult(result json.RawMessage, cacheable bool) (json.RawMessage, bool) {
	if !isObject(result) {
		return result, false
	}
	var add []byte
	if _, ok, _ := Field(result, "resultType"); !ok {
		add = append(add, `"resultType":"complete",`...)
	}
	if cacheable {
		if _, ok, _ := Field(result, "ttlMs"); !ok {
			add = append(add, `"ttlMs":0,`...)
		}
		if _, ok, _ := Field(result, "cacheScope"); !ok {
			add = append(add, `"cacheScope":"private",`...)
		}
	}
	if len(add) == 0 {
		return result, false
	}
	i := skipSpace(result, 0) + 1 // past '{'
	rest := result[i:]
	if j := skipSpace(rest, 0); j < len(rest) && rest[j] == '}' {
		add = add[:len(add)-1] // an empty object: no member follows
	}
	out := make([]byte, 0, len(result)+len(add))
	out = append(out, '{')
	out = append(out, add...)
	return append(out, rest...), true
}

// PrivateScope is a cacheable result whose cacheScope says "public" made
// "private": what a caller got after the gateway filtered it for the
// caller's key (allowed tools, the key's permissions) may not be reused
// for anyone else, whatever the upstream said of its own list. Any other
// result is returned as it is.
func PrivateScope(result json.RawMessage) json.RawMessage {
	if scope, ok, _ := StringField(result, "cacheScope"); !ok || scope != "public" {
		return result
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil {
		return result
	}
	m["cacheScope"] = json.RawMessage(`"private"`)
	out, err := json.Marshal(m)
	if err != nil {
		return result
	}
	return out
}

// CacheTTL is a cacheable result's ttlMs, when it gives a positive one.
func CacheTTL(result json.RawMessage) (time.Duration, bool) {
	raw, ok, _ := Field(result, "ttlMs")
	if !ok {
		return 0, false
	}
	var ms int64
	if json.Unmarshal(raw, &ms) != nil || ms <= 0 {
		return 0, false
	}
	return time.Duration(min(ms, int64(24*time.Hour/time.Millisecond))) * time.Millisecond, true
}

// WithTTL is a cacheable result with its ttlMs set to d (whole
// milliseconds, at least 0): what a cache answers with a result it kept for
// part of the upstream's ttlMs, so a client's freshness ends when the
// gateway's does. A result that is not an object is returned as it is.
func WithTTL(result json.RawMessage, d time.Duration) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(result, &m) != nil || m == nil {
		return result
	}
	m["ttlMs"], _ = json.Marshal(max(d.Milliseconds(), 0))
	out, err := json.Marshal(m)
	if err != nil {
		return result
	}
	return out
}
