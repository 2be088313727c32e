package ingress

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

type rpcErrorBody struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Data    map[string]string `json:"data"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

func decodeErrorBody(t *testing.T, rec *httptest.ResponseRecorder) rpcErrorBody {
	t.Helper()
	var b rpcErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body is not JSON: %q", rec.Body.String())
	}
	return b
}

func TestWriteErrorEveryKind(t *testing.T) {
	for _, k := range bus.Catalog() {
		t.Run(k.Code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			msg := `something about "server-x" went wrong`
			writeError(rec, json.RawMessage(`"req-7"`), bus.Errorf(k, "%s", msg))

			if rec.Code != k.HTTP {
				t.Errorf("status %d, want %d from the catalog", rec.Code, k.HTTP)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %q for a %d-byte body", cl, rec.Body.Len())
			}
			b := decodeErrorBody(t, rec)
			if b.JSONRPC != "2.0" || string(b.ID) != `"req-7"` || b.Result != nil {
				t.Errorf("envelope jsonrpc=%q id=%s result=%s", b.JSONRPC, b.ID, b.Result)
			}
			if b.Error.Code != k.RPC || b.Error.Message != msg || b.Error.Data["mcpbus_code"] != k.Code {
				t.Errorf("error object %+v, want code %d message %q mcpbus_code %s", b.Error, k.RPC, msg, k.Code)
			}

			www := rec.Header().Get("WWW-Authenticate")
			if k == bus.ErrUnauthorized {
				if !strings.HasPrefix(www, "Bearer ") || !strings.Contains(www, `realm="mcpbus"`) {
					t.Errorf("401 WWW-Authenticate = %q, want a Bearer challenge", www)
				}
			} else if www != "" {
				t.Errorf("WWW-Authenticate %q on a non-401 error", www)
			}
			allow := rec.Header().Get("Allow")
			if k == bus.ErrMethodNotAllowed {
				if allow != "GET, POST, DELETE" {
					t.Errorf("405 Allow = %q, want \"GET, POST, DELETE\"", allow)
				}
			} else if allow != "" {
				t.Errorf("Allow %q on a non-405 error", allow)
			}
		})
	}
}

func TestWriteErrorIDs(t *testing.T) {
	cases := []struct {
		id   json.RawMessage
		want string
	}{
		{json.RawMessage(`42`), `42`},
		{json.RawMessage(`"abc"`), `"abc"`},
		{json.RawMessage(`-1`), `-1`},
		{nil, `null`}, // no request id known (e.g. the body did not parse)
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		writeError(rec, c.id, bus.Errorf(bus.ErrSessionNotFound, "session not found"))
		if rec.Code != http.StatusNotFound {
			t.Errorf("status %d", rec.Code)
		}
		if b := decodeErrorBody(t, rec); string(b.ID) != c.want {
			t.Errorf("id %s, want %s", b.ID, c.want)
		}
	}
}

func TestMCPEndpointMethodAndPathErrors(t *testing.T) {
	// Built by hand: New needs a NATS connection, and these answers need none.
	g := &Ingress{sessions: newTestStore(t)}
	h := http.HandlerFunc(g.serveMCP)
	cases := []struct {
		method, target string
		status         int
		kind           bus.Kind
		allow          string
	}{
		// GET opens the session stream, which needs text/event-stream.
		{http.MethodGet, "/mcp", http.StatusNotAcceptable, bus.ErrNotAcceptable, ""},
		{http.MethodPut, "/mcp/github", http.StatusMethodNotAllowed, bus.ErrMethodNotAllowed, "GET, POST, DELETE"},
		{http.MethodPatch, "/mcp", http.StatusMethodNotAllowed, bus.ErrMethodNotAllowed, "GET, POST, DELETE"},
		{http.MethodPost, "/mcp/a/b", http.StatusNotFound, bus.ErrUnknownServer, ""},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(c.method, c.target, nil))
		if rec.Code != c.status || rec.Header().Get("Allow") != c.allow {
			t.Errorf("%s %s: status %d Allow %q, want %d %q", c.method, c.target, rec.Code, rec.Header().Get("Allow"), c.status, c.allow)
		}
		if b := decodeErrorBody(t, rec); b.Error.Data["mcpbus_code"] != c.kind.Code || string(b.ID) != "null" {
			t.Errorf("%s %s: body %s", c.method, c.target, rec.Body.String())
		}
	}
}

func TestStartSSEAndEvent(t *testing.T) {
	rec := httptest.NewRecorder()
	s := startSSE(rec, "")
	s.message([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/event-stream" || rec.Header().Get("Cache-Control") != "no-cache" ||
		rec.Header().Get("X-Accel-Buffering") != "no" {
		t.Fatalf("status %d headers %v", rec.Code, rec.Header())
	}
	if !rec.Flushed {
		t.Error("events were not flushed")
	}
	if want := "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"; rec.Body.String() != want {
		t.Fatalf("body %q, want %q", rec.Body.String(), want)
	}
}

// Events get ids in sequence, the priming event carries an id, a retry and
// empty data, and a message with newlines becomes several data lines (a raw
// newline would end the event early).
func TestSSEEventIDsPrimingAndNewlines(t *testing.T) {
	rec := httptest.NewRecorder()
	s := startSSE(rec, "abc")
	s.prime()
	s.message([]byte("{\"jsonrpc\":\"2.0\",\r\n\"method\":\"x\"}"))
	s.comment("keepalive")
	s.event("endpoint", []byte("/messages?session_id=1"))
	want := "id: abc-1\nretry: 1000\ndata: \n\n" +
		"id: abc-2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"method\":\"x\"}\n\n" +
		": keepalive\n\n" +
		"id: abc-3\nevent: endpoint\ndata: /messages?session_id=1\n\n"
	if rec.Body.String() != want {
		t.Fatalf("stream\n%q\nwant\n%q", rec.Body.String(), want)
	}
	if !primes("2025-11-25") || primes("2025-06-18") || primes("2024-11-05") {
		t.Error("priming events are for 2025-11-25 clients and later only")
	}
}

func TestWriteErrorRetryAfter(t *testing.T) {
	cases := []struct {
		after time.Duration
		want  string
	}{
		{30 * time.Second, "30"},
		{1500 * time.Millisecond, "2"}, // rounded up: never earlier than asked
		{time.Millisecond, "1"},
		{0, "1"}, // no hint still says "not at once"
		{2 * time.Minute, "120"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		e := bus.Errorf(bus.ErrRateLimited, "rate limit of 10 requests per minute reached")
		e.RetryAfter = c.after
		writeError(rec, json.RawMessage(`1`), e)
		if rec.Code != http.StatusTooManyRequests {
			t.Errorf("%v: status %d", c.after, rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != c.want {
			t.Errorf("%v: Retry-After %q, want %q", c.after, got, c.want)
		}
		if b := decodeErrorBody(t, rec); b.Error.Data["mcpbus_code"] != "MCPBUS_RATE_LIMITED" || b.Error.Code != -32029 {
			t.Errorf("%v: body %s", c.after, rec.Body.String())
		}
	}
	// Other kinds carry no Retry-After, even with a RetryAfter set.
	rec := httptest.NewRecorder()
	e := bus.Errorf(bus.ErrOverloaded, "busy")
	writeError(rec, nil, e)
	if rec.Header().Get("Retry-After") != "" {
		t.Errorf("Retry-After on %s", e.Kind.Code)
	}
}

type restErrorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func TestWriteRESTErrorEveryKind(t *testing.T) {
	for _, k := range bus.Catalog() {
		t.Run(k.Code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeRESTError(rec, bus.Errorf(k, "team %q not found", "t1"))
			if rec.Code < 400 {
				t.Errorf("status %d for an error", rec.Code)
			}
			if k.HTTP != http.StatusOK && rec.Code != k.HTTP {
				t.Errorf("status %d, want the catalog's %d", rec.Code, k.HTTP)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var raw map[string]map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
				t.Fatalf("body %q", rec.Body.String())
			}
			for _, f := range []string{"message", "type", "param", "code"} {
				if _, ok := raw["error"][f]; !ok {
					t.Errorf("error.%s missing in %s", f, rec.Body.String())
				}
			}
			var b restErrorBody
			_ = json.Unmarshal(rec.Body.Bytes(), &b)
			wantType := strings.ToLower(strings.TrimPrefix(k.Code, "MCPBUS_"))
			if b.Error.Message != `team "t1" not found` || b.Error.Code != k.Code || b.Error.Type != wantType || b.Error.Param != nil {
				t.Errorf("body %s", rec.Body.String())
			}
			if (rec.Header().Get("WWW-Authenticate") != "") != (k == bus.ErrUnauthorized) {
				t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
			if (rec.Header().Get("Retry-After") != "") != (k == bus.ErrRateLimited) {
				t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
			}
		})
	}
	rec := httptest.NewRecorder()
	writeRESTError(rec, bus.Errorf(bus.ErrForbidden, "only the master key may manage keys and teams"))
	want := `{"error":{"message":"only the master key may manage keys and teams","type":"forbidden","param":null,"code":"MCPBUS_FORBIDDEN"}}`
	if rec.Code != http.StatusForbidden || rec.Body.String() != want {
		t.Errorf("403: %d %s", rec.Code, rec.Body.String())
	}
}
