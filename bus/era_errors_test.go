package bus

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A stateless-era client never sees a code in the range the 2026-07-28
// spec reserves (-32020..-32099) unless the spec defines it with that
// meaning, nor one of the legacy sub-range (-32000..-32019); older clients
// keep every code they had.
func TestModernCodesLeaveTheReservedRange(t *testing.T) {
	spec := map[int]Kind{-32020: ErrHeaderMismatch, -32021: ErrMissingCapability, -32022: ErrUnsupportedVersion,
		-32042: ErrURLElicitationRequired} // 2025-11-25's URLElicitationRequiredError
	for _, k := range Catalog() {
		code := k.ModernRPC()
		if code >= -32099 && code <= -32000 && spec[code] != k {
			t.Errorf("%s: modern code %d is reserved by the spec", k.Code, code)
		}
		if code != k.RPC && code != k.RPC+1000 {
			t.Errorf("%s: modern code %d is not the legacy %d plus 1000", k.Code, code, k.RPC)
		}
	}
	if got := ErrUpstreamUnavailable.ModernRPC(); got != -31020 {
		t.Errorf("UPSTREAM_UNAVAILABLE modern code %d, want -31020", got)
	}
	legacy := ErrorResponse(json.RawMessage(`1`), Errorf(ErrUpstreamTimeout, "slow"))
	modern := ErrorResponseFor(json.RawMessage(`1`), Errorf(ErrUpstreamTimeout, "slow"), true)
	if !strings.Contains(string(legacy), `"code":-32021`) || !strings.Contains(string(modern), `"code":-31021`) ||
		!strings.Contains(string(modern), `"mcpbus_code":"MCPBUS_UPSTREAM_TIMEOUT"`) {
		t.Errorf("legacy %s / modern %s", legacy, modern)
	}
}

// Statuses of JSON answers to stateless-era requests (spec
// transports/streamable-http): 404 for -32601, 400 for -32602 and the
// revision's own three, the catalog's otherwise; older clients keep theirs.
func TestModernStatus(t *testing.T) {
	for _, c := range []struct {
		k              Kind
		legacy, modern int
	}{
		{ErrMethodNotFound, http.StatusOK, http.StatusNotFound},
		{ErrInvalidParams, http.StatusOK, http.StatusBadRequest},
		{ErrToolNotAllowed, http.StatusOK, http.StatusBadRequest},
		{ErrHeaderMismatch, http.StatusBadRequest, http.StatusBadRequest},
		{ErrUnsupportedVersion, http.StatusBadRequest, http.StatusBadRequest},
		{ErrUpstreamUnavailable, http.StatusOK, http.StatusOK},
		{ErrUnauthorized, http.StatusUnauthorized, http.StatusUnauthorized},
		{ErrRateLimited, http.StatusTooManyRequests, http.StatusTooManyRequests},
	} {
		e := Errorf(c.k, "x")
		if got := e.Status(false); got != c.legacy {
			t.Errorf("%s legacy status %d, want %d", c.k.Code, got, c.legacy)
		}
		if got := e.Status(true); got != c.modern {
			t.Errorf("%s modern status %d, want %d", c.k.Code, got, c.modern)
		}
	}
}

// UnsupportedProtocolVersion lists every revision mcpbus speaks, so a
// client can pick one (go-sdk's client retries discover with it).
func TestUnsupportedVersionData(t *testing.T) {
	body := ErrorResponseFor(json.RawMessage(`7`), UnsupportedVersion("1900-01-01"), true)
	var r struct {
		Error struct {
			Code int `json:"code"`
			Data struct {
				Supported []string `json:"supported"`
				Requested string   `json:"requested"`
				Code      string   `json:"mcpbus_code"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	d := r.Error.Data
	if r.Error.Code != -32022 || d.Requested != "1900-01-01" || len(d.Supported) != 5 || d.Supported[0] != "2026-07-28" ||
		d.Supported[1] != LatestProtocolVersion || d.Code != "MCPBUS_UNSUPPORTED_PROTOCOL_VERSION" {
		t.Errorf("got %s", body)
	}
}

func TestPrivateScopeAndCacheTTL(t *testing.T) {
	got := string(PrivateScope(json.RawMessage(`{"tools":[],"ttlMs":60000,"cacheScope":"public"}`)))
	if !strings.Contains(got, `"cacheScope":"private"`) || !strings.Contains(got, `"ttlMs":60000`) {
		t.Errorf("PrivateScope = %s", got)
	}
	for _, same := range []string{`{"tools":[],"cacheScope":"private"}`, `{"tools":[]}`, `[1]`} {
		if got := string(PrivateScope(json.RawMessage(same))); got != same {
			t.Errorf("PrivateScope(%s) = %s, want it unchanged", same, got)
		}
	}
	if d, ok := CacheTTL(json.RawMessage(`{"ttlMs":1500}`)); !ok || d != 1500*time.Millisecond {
		t.Errorf("CacheTTL 1500 = %v %v", d, ok)
	}
	for _, none := range []string{`{"ttlMs":0}`, `{"ttlMs":-5}`, `{}`, `{"ttlMs":"x"}`} {
		if _, ok := CacheTTL(json.RawMessage(none)); ok {
			t.Errorf("CacheTTL(%s) gave a ttl", none)
		}
	}
}
