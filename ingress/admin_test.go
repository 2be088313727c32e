package ingress

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

func testConn(t *testing.T) *nats.Conn {
	t.Helper()
	return bustest.Conn(t, bustest.Server(t))
}

const (
	testMasterKey   = "sk-master-test"
	testUserKey     = "sk-user-test"
	testOrgAdminKey = "sk-org-admin-test"
)

// fakeVerify stands in for auth.verify: the master key is admin, the user key
// is a plain key, anything else is refused.
func fakeVerify(t *testing.T, nc *nats.Conn) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: "fake-auth-verify", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("verify", micro.HandlerFunc(func(req micro.Request) {
		var vr bus.VerifyRequest
		_ = json.Unmarshal(req.Data(), &vr)
		if c := vr.OAuth; c != nil { // what auth answers a user of team t1
			if e := c.Validate(); e != nil {
				bus.RespondError(req, e)
				return
			}
			_ = req.RespondJSON(bus.Identity{KeyID: bus.OAuthKeyID(c.Issuer, c.User), Alias: c.Email, User: c.User, Team: "t1",
				Permissions: bus.Permissions{Servers: []string{"github"}}, Expires: &c.Expires})
			return
		}
		switch vr.KeyHash {
		case bus.HashKey(testMasterKey):
			_ = req.RespondJSON(bus.Identity{KeyID: "master", Alias: "master", Admin: true, Permissions: bus.Permissions{AllServers: true}})
		case bus.HashKey(testUserKey):
			_ = req.RespondJSON(bus.Identity{KeyID: bus.HashKey(testUserKey), Alias: "alice", Team: "t1", Permissions: bus.Permissions{Servers: []string{"github"}}})
		case bus.HashKey(testOrgAdminKey):
			_ = req.RespondJSON(bus.Identity{KeyID: bus.HashKey(testOrgAdminKey), Alias: "org-boss", Team: "tx", Org: "x", OrgAdmin: "x",
				Permissions: bus.Permissions{AllServers: true, AllModels: true, AllAgents: true}})
		case "":
			bus.RespondError(req, bus.Errorf(bus.ErrUnauthorized, "no key: send Authorization: Bearer <key>"))
		default:
			bus.RespondError(req, bus.Errorf(bus.ErrUnauthorized, "invalid key"))
		}
	}), micro.WithEndpointSubject(bus.SubjectAuthVerify))
	if err != nil {
		t.Fatal(err)
	}
	// The server has the subscription before any test request.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// adminCall is one request the fake admin service received.
type adminCall struct {
	subject string
	data    string
	header  nats.Header
}

// fakeAdmin stands in for the auth service's admin subjects: it records every
// request and answers with answer (an echo of the body by default).
type fakeAdmin struct {
	mu     sync.Mutex
	calls  []adminCall
	answer func(subject string, data []byte) ([]byte, *bus.Error)
}

func (f *fakeAdmin) setAnswer(a func(subject string, data []byte) ([]byte, *bus.Error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = a
}

func (f *fakeAdmin) taken() []adminCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

func startFakeAdmin(t *testing.T, nc *nats.Conn) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{}
	svc, err := micro.AddService(nc, micro.Config{Name: "fake-auth-admin", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	for i, rt := range adminRoutes {
		err := svc.AddEndpoint("admin"+string(rune('a'+i)), micro.HandlerFunc(func(req micro.Request) {
			f.mu.Lock()
			f.calls = append(f.calls, adminCall{req.Subject(), string(req.Data()), nats.Header(req.Headers())})
			answer := f.answer
			f.mu.Unlock()
			if answer == nil {
				_ = req.Respond(req.Data())
				return
			}
			reply, e := answer(req.Subject(), req.Data())
			if e != nil {
				bus.RespondError(req, e)
				return
			}
			_ = req.Respond(reply)
		}), micro.WithEndpointSubject(rt.subject))
		if err != nil {
			t.Fatal(err)
		}
	}
	return f
}

type adminEnv struct {
	g    *Ingress
	srv  *httptest.Server
	fake *fakeAdmin
	logs *syncBuffer
}

type syncBuffer = bustest.Buffer

func newAdminEnv(t *testing.T, withAdmin bool) *adminEnv {
	t.Helper()
	ns := bustest.Server(t)
	svcConn := bustest.Conn(t, ns)
	fakeVerify(t, svcConn)
	env := &adminEnv{logs: &syncBuffer{}}
	if withAdmin {
		env.fake = startFakeAdmin(t, svcConn)
	}
	if err := svcConn.Flush(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	env.g = New(Options{NC: bustest.Conn(t, ns), Log: log, InternalRanges: prefixes("127.0.0.0/8")})
	t.Cleanup(env.g.Close)
	env.srv = httptest.NewServer(env.g.Handler())
	t.Cleanup(env.srv.Close)
	return env
}

type adminResp struct {
	status int
	header http.Header
	body   string
}

func (e *adminEnv) do(t *testing.T, method, path, key, body string) adminResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return adminResp{res.StatusCode, res.Header, string(b)}
}

func restBody(t *testing.T, r adminResp) restErrorBody {
	t.Helper()
	var b restErrorBody
	if err := json.Unmarshal([]byte(r.body), &b); err != nil {
		t.Fatalf("error body is not JSON: %q", r.body)
	}
	return b
}

func TestAdminForwardsBodyToSubject(t *testing.T) {
	env := newAdminEnv(t, true)
	posts := map[string]string{
		"/key/generate": bus.SubjectKeyGenerate,
		"/key/update":   bus.SubjectKeyUpdate,
		"/key/delete":   bus.SubjectKeyDelete,
		"/team/new":     bus.SubjectTeamNew,
		"/team/update":  bus.SubjectTeamUpdate,
		"/team/delete":  bus.SubjectTeamDelete,
	}
	body := `{"key_alias":"ci","team_id":"t1","mcp_servers":["github"],"mcp_tool_permissions":{"github":["search"]},"duration":"30d","rpm_limit":10}`
	for path, subject := range posts {
		r := env.do(t, http.MethodPost, path, testMasterKey, body)
		if r.status != http.StatusOK || r.body != body || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %q %v", path, r.status, r.body, r.header)
		}
		calls := env.fake.taken()
		if len(calls) != 1 || calls[0].subject != subject || calls[0].data != body {
			t.Fatalf("%s: calls %+v", path, calls)
		}
		h := calls[0].header
		if h.Get(bus.HeaderKeyID) != "master" || h.Get(bus.HeaderAdmin) != "true" || h.Get(bus.HeaderRequestID) == "" || h.Get(bus.HeaderIPClass) != "internal" {
			t.Errorf("%s: envelope %v", path, h)
		}
	}
	// An empty POST body stands for {}.
	r := env.do(t, http.MethodPost, "/key/generate", testMasterKey, "")
	if calls := env.fake.taken(); r.status != http.StatusOK || len(calls) != 1 || calls[0].data != "{}" {
		t.Errorf("empty body: %d %+v", r.status, calls)
	}
}

func TestAdminGETBuildsBodyFromQuery(t *testing.T) {
	env := newAdminEnv(t, true)
	cases := []struct {
		path, subject, want string
	}{
		{"/key/info?key=sk-abc", bus.SubjectKeyInfo, `{"key":"sk-abc"}`},
		{"/key/info?key=%20sk-abc%20&other=1", bus.SubjectKeyInfo, `{"key":"sk-abc"}`},
		{"/key/list", bus.SubjectKeyList, `{}`},
		{"/key/list?team_id=t1", bus.SubjectKeyList, `{"team_id":"t1"}`},
		{"/team/info?team_id=t1", bus.SubjectTeamInfo, `{"team_id":"t1"}`},
		{"/team/list", bus.SubjectTeamList, `{}`},
	}
	for _, c := range cases {
		r := env.do(t, http.MethodGet, c.path, testMasterKey, "")
		if r.status != http.StatusOK || r.body != c.want {
			t.Errorf("%s: %d %q", c.path, r.status, r.body)
		}
		calls := env.fake.taken()
		if len(calls) != 1 || calls[0].subject != c.subject || calls[0].data != c.want {
			t.Errorf("%s: calls %+v", c.path, calls)
		}
	}
	for _, c := range []struct{ path, param string }{
		{"/key/info", "key"}, {"/key/info?key=", "key"}, {"/team/info", "team_id"}, {"/team/info?team_id=%20", "team_id"},
	} {
		r := env.do(t, http.MethodGet, c.path, testMasterKey, "")
		b := restBody(t, r)
		if r.status != http.StatusBadRequest || b.Error.Code != "MCPBUS_BAD_REQUEST" || !strings.Contains(b.Error.Message, "query parameter "+c.param+" is required") {
			t.Errorf("%s: %d %s", c.path, r.status, r.body)
		}
	}
	if calls := env.fake.taken(); len(calls) != 0 {
		t.Errorf("bad requests reached the service: %+v", calls)
	}
}

func TestAdminOnlyMasterKey(t *testing.T) {
	env := newAdminEnv(t, true)
	for _, rt := range adminRoutes {
		path := rt.path
		if rt.required != "" {
			path += "?" + rt.required + "=x"
		}
		r := env.do(t, rt.method, path, testUserKey, `{"team_id":"t1"}`)
		want := `{"error":{"message":"only the master key (or an org_admin's key, within its organization) may manage keys, teams and organizations","type":"forbidden","param":null,"code":"MCPBUS_FORBIDDEN"}}`
		if r.status != http.StatusForbidden || r.body != want {
			t.Errorf("%s as a plain key: %d %s", rt.path, r.status, r.body)
		}
		r = env.do(t, rt.method, path, "", "")
		b := restBody(t, r)
		if r.status != http.StatusUnauthorized || b.Error.Code != "MCPBUS_UNAUTHORIZED" || b.Error.Type != "unauthorized" ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without a key: %d %s %v", rt.path, r.status, r.body, r.header)
		}
		r = env.do(t, rt.method, path, "sk-wrong", "")
		if b := restBody(t, r); r.status != http.StatusUnauthorized || b.Error.Message != "invalid key" {
			t.Errorf("%s with a wrong key: %d %s", rt.path, r.status, r.body)
		}
	}
	if calls := env.fake.taken(); len(calls) != 0 {
		t.Fatalf("refused callers reached the service: %d calls", len(calls))
	}
	// x-litellm-api-key works like Authorization.
	req, _ := http.NewRequest(http.MethodGet, env.srv.URL+"/team/list", nil)
	req.Header.Set("x-litellm-api-key", "Bearer "+testMasterKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("x-litellm-api-key: %d", res.StatusCode)
	}
}

func TestAdminErrorMapping(t *testing.T) {
	env := newAdminEnv(t, true)
	cases := []struct {
		err        *bus.Error
		status     int
		retryAfter string
	}{
		{bus.Errorf(bus.ErrBadRequest, `duration "3x" is not valid: use 30s, 30m, 30h or 30d`), http.StatusBadRequest, ""},
		{bus.Errorf(bus.ErrUnknownServer, `unknown MCP server "nope" in mcp_servers`), http.StatusNotFound, ""},
		{bus.Errorf(bus.ErrForbidden, "team t1 is blocked"), http.StatusForbidden, ""},
		{&bus.Error{Kind: bus.ErrRateLimited, Message: "too many key changes", RetryAfter: 7 * time.Second}, http.StatusTooManyRequests, "7"},
		{bus.Errorf(bus.ErrInternal, "internal error"), http.StatusInternalServerError, ""},
		{bus.Errorf(bus.ErrInvalidParams, "bad params"), http.StatusBadRequest, ""}, // a 200-in-MCP kind still fails here
	}
	for _, c := range cases {
		env.fake.setAnswer(func(string, []byte) ([]byte, *bus.Error) { return nil, c.err })
		r := env.do(t, http.MethodPost, "/key/generate", testMasterKey, `{}`)
		b := restBody(t, r)
		if r.status != c.status || b.Error.Message != c.err.Message || b.Error.Code != c.err.Kind.Code {
			t.Errorf("%s: %d %s", c.err.Kind.Code, r.status, r.body)
		}
		if got := r.header.Get("Retry-After"); got != c.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", c.err.Kind.Code, got, c.retryAfter)
		}
	}
	// A code outside the catalog is an internal error that keeps its message.
	env.fake.setAnswer(func(string, []byte) ([]byte, *bus.Error) {
		return nil, &bus.Error{Kind: bus.Kind{Code: "AUTH_SOMETHING_NEW"}, Message: "something new"}
	})
	if r := env.do(t, http.MethodPost, "/key/update", testMasterKey, `{}`); r.status != http.StatusInternalServerError ||
		restBody(t, r).Error.Message != "something new" || restBody(t, r).Error.Code != "MCPBUS_INTERNAL" {
		t.Errorf("unknown code: %d %s", r.status, r.body)
	}
	// A reply with no body is relayed as {}.
	env.fake.setAnswer(func(string, []byte) ([]byte, *bus.Error) { return nil, nil })
	if r := env.do(t, http.MethodPost, "/key/delete", testMasterKey, `{"keys":["sk-x"]}`); r.status != http.StatusOK || r.body != "{}" {
		t.Errorf("empty reply: %d %q", r.status, r.body)
	}
}

func TestAdminBadBodies(t *testing.T) {
	env := newAdminEnv(t, true)
	cases := []struct {
		name, body string
		status     int
		msg        string
	}{
		{"syntax", `{"key_alias": ci}`, http.StatusBadRequest, "request body is not valid JSON: invalid character 'c'"},
		{"truncated", `{"key_alias": "ci"`, http.StatusBadRequest, "request body is not valid JSON: unexpected end of JSON input"},
		{"trailing", `{} {}`, http.StatusBadRequest, "request body is not valid JSON"},
		{"array", `["a"]`, http.StatusBadRequest, "request body must be a JSON object"},
		{"string", `"a"`, http.StatusBadRequest, "request body must be a JSON object"},
		{"null", `null`, http.StatusBadRequest, "request body must be a JSON object"},
		{"too large", `{"metadata":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge, "request body larger than 1048576 bytes"},
	}
	for _, c := range cases {
		r := env.do(t, http.MethodPost, "/team/new", testMasterKey, c.body)
		b := restBody(t, r)
		if r.status != c.status || !strings.HasPrefix(b.Error.Message, c.msg) {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	if calls := env.fake.taken(); len(calls) != 0 {
		t.Errorf("bad bodies reached the service: %+v", calls)
	}
	// Exactly the limit is fine.
	big := `{"metadata":"` + strings.Repeat("x", 1<<20-len(`{"metadata":""}`)) + `"}`
	if r := env.do(t, http.MethodPost, "/team/new", testMasterKey, big); r.status != http.StatusOK {
		t.Errorf("1 MiB body: %d", r.status)
	}
}

func TestAdminWrongMethod(t *testing.T) {
	env := newAdminEnv(t, true)
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodGet, "/key/generate", "POST"},
		{http.MethodPost, "/key/info", "GET"},
		{http.MethodDelete, "/team/delete", "POST"},
		{http.MethodPut, "/team/list", "GET"},
	} {
		r := env.do(t, c.method, c.path, testMasterKey, "")
		if b := restBody(t, r); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != c.allow || b.Error.Code != "MCPBUS_METHOD_NOT_ALLOWED" {
			t.Errorf("%s %s: %d %v %s", c.method, c.path, r.status, r.header, r.body)
		}
	}
}

func TestAdminServiceNotRunning(t *testing.T) {
	env := newAdminEnv(t, false)
	r := env.do(t, http.MethodGet, "/key/list", testMasterKey, "")
	b := restBody(t, r)
	if r.status != http.StatusServiceUnavailable || b.Error.Code != "MCPBUS_SERVICE_UNAVAILABLE" || !strings.Contains(b.Error.Message, "auth service") {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// Keys travel in admin bodies and in /key/info's query: none may reach the log.
func TestAdminNeverLogsKeys(t *testing.T) {
	env := newAdminEnv(t, true)
	const secret = "sk-secret-0123456789"
	env.fake.setAnswer(func(string, []byte) ([]byte, *bus.Error) {
		return []byte(`{"key":"` + secret + `","token":"abc"}`), nil
	})
	env.do(t, http.MethodPost, "/key/generate", testMasterKey, `{"key":"`+secret+`"}`)
	env.do(t, http.MethodGet, "/key/info?key="+secret, testMasterKey, "")
	env.do(t, http.MethodPost, "/key/update", testUserKey, `{"key":"`+secret+`"}`)
	env.fake.setAnswer(func(string, []byte) ([]byte, *bus.Error) {
		return nil, bus.Errorf(bus.ErrBadRequest, "bad")
	})
	env.do(t, http.MethodPost, "/key/delete", testMasterKey, `{"keys":["`+secret+`"]}`)
	env.do(t, http.MethodPost, "/key/delete", testMasterKey, `{"keys":["`+secret+`"`)
	logs := env.logs.String()
	if strings.Contains(logs, secret) || strings.Contains(logs, testMasterKey) || strings.Contains(logs, testUserKey) {
		t.Fatalf("a key reached the log:\n%s", logs)
	}
	if !strings.Contains(logs, "path=/key/generate") {
		t.Errorf("admin requests are not logged at all:\n%s", logs)
	}
}
