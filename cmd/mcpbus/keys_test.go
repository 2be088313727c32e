package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/mcpbus/mcpbus/config"
)

const cliMaster = "sk-cli-master-SECRET"

// fakeAdminAPI fakes the gateway's admin API on 127.0.0.1: it checks the
// master key, records each request and answers with the reply set for its path.
type fakeAdminAPI struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []recordedReq
	replies map[string]fakeReply
}

type recordedReq struct {
	method, path, query string
	body                map[string]any
}

type fakeReply struct {
	status int
	body   string
}

func newFakeAdminAPI(t *testing.T) *fakeAdminAPI {
	t.Helper()
	f := &fakeAdminAPI{replies: map[string]fakeReply{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+cliMaster {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"message":"invalid key","type":"unauthorized","param":null,"code":"MCPBUS_UNAUTHORIZED"}}`)
			return
		}
		rec := recordedReq{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			if err := json.Unmarshal(b, &rec.body); err != nil {
				t.Errorf("the CLI sent invalid JSON: %q", b)
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
			}
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		rep, ok := f.replies[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":{"message":"no such endpoint"}}`)
			return
		}
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdminAPI) reply(path string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replies[path] = fakeReply{status, body}
}

func (f *fakeAdminAPI) taken() []recordedReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.reqs
	f.reqs = nil
	return out
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKeysCreate(t *testing.T) {
	f := newFakeAdminAPI(t)
	t.Setenv("MCPBUS_URL", f.srv.URL)
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)
	f.reply("/key/generate", 200, `{"key":"sk-new-key-123","token":"0123456789abcdef0123","key_alias":"ci","expires":"2030-01-02T03:04:05Z"}`)

	code, stdout, stderr := runCLI("keys", "create", "--alias", "ci", "--team", "t1", "--servers", "github, jira",
		"--access-groups", "eng,ops", "--tools", "github=search,get_issue", "--tools", "jira=create", "--tools", "github=search", "--duration", "30d", "--rpm", "60")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "sk-new-key-123\n" {
		t.Errorf("stdout %q: want only the key", stdout)
	}
	if !strings.Contains(stderr, "will not be shown again") || !strings.Contains(stderr, "0123456789ab") || !strings.Contains(stderr, "2030-01-02T03:04:05Z") {
		t.Errorf("stderr %q", stderr)
	}
	reqs := f.taken()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/key/generate" {
		t.Fatalf("requests %+v", reqs)
	}
	want := map[string]any{
		"key_alias":         "ci",
		"team_id":           "t1",
		"mcp_servers":       []any{"github", "jira"},
		"mcp_access_groups": []any{"eng", "ops"},
		"mcp_tool_permissions": map[string]any{
			"github": []any{"search", "get_issue"},
			"jira":   []any{"create"},
		},
		"duration":  "30d",
		"rpm_limit": float64(60),
	}
	if !reflect.DeepEqual(reqs[0].body, want) {
		t.Errorf("body %v\nwant %v", reqs[0].body, want)
	}
	if strings.Contains(stdout+stderr, cliMaster) {
		t.Error("the master key was printed")
	}

	// No flags: an empty object, every default left to the server.
	f.reply("/key/generate", 200, `{"key":"sk-2"}`)
	if code, stdout, stderr := runCLI("keys", "create"); code != 0 || stdout != "sk-2\n" || !strings.Contains(stderr, "will not be shown again") {
		t.Errorf("bare create: %d %q %q", code, stdout, stderr)
	}
	if reqs := f.taken(); len(reqs) != 1 || len(reqs[0].body) != 0 {
		t.Errorf("bare create body %+v", reqs)
	}
}

func TestKeysCreateErrors(t *testing.T) {
	f := newFakeAdminAPI(t)
	t.Setenv("MCPBUS_URL", f.srv.URL)
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)

	f.reply("/key/generate", 400, `{"error":{"message":"duration \"3x\" is not valid: use 30s, 30m, 30h or 30d","type":"bad_request","param":null,"code":"MCPBUS_BAD_REQUEST"}}`)
	code, stdout, stderr := runCLI("keys", "create", "--duration", "3x")
	if code != 1 || stdout != "" || !strings.Contains(stderr, `duration "3x" is not valid`) || !strings.Contains(stderr, "HTTP 400") {
		t.Errorf("server error: %d %q %q", code, stdout, stderr)
	}
	f.reply("/key/generate", 200, `{"token":"abc"}`)
	if code, stdout, stderr := runCLI("keys", "create"); code != 1 || stdout != "" || !strings.Contains(stderr, "holds no key") {
		t.Errorf("no key in reply: %d %q %q", code, stdout, stderr)
	}
	f.reply("/key/generate", 502, `<html>bad gateway</html>`)
	if code, _, stderr := runCLI("keys", "create"); code != 1 || !strings.Contains(stderr, "Bad Gateway (HTTP 502)") {
		t.Errorf("non-JSON error: %d %q", code, stderr)
	}
	f.reply("/key/generate", 200, `not json`)
	if code, _, stderr := runCLI("keys", "create"); code != 1 || !strings.Contains(stderr, "unreadable") {
		t.Errorf("unreadable reply: %d %q", code, stderr)
	}

	// Refused before any request.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tools", "github"}, "want server=tool1,tool2"},
		{[]string{"--tools", "=a"}, "want server=tool1,tool2"},
		{[]string{"--tools", "github="}, "want server=tool1,tool2"},
		{[]string{"--rpm", "-1"}, "--rpm must be 0 or more"},
		{[]string{"--rpm", "many"}, "invalid value"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--url", "ftp://x"}, "want http(s)://host:port"},
		{[]string{"--key", "sk-x"}, "flag provided but not defined: -key"},
	} {
		f.taken()
		code, _, stderr := runCLI(append([]string{"keys", "create"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
		if reqs := f.taken(); len(reqs) != 0 {
			t.Errorf("%v: sent %+v", c.args, reqs)
		}
	}
}

func TestKeysMasterKeyAndURL(t *testing.T) {
	f := newFakeAdminAPI(t)
	f.reply("/key/list", 200, `{"keys":[]}`)
	t.Setenv("MCPBUS_URL", "http://127.0.0.1:1") // nothing listens there

	t.Setenv("MCPBUS_MASTER_KEY", "")
	if code, _, stderr := runCLI("keys", "list", "--url", f.srv.URL); code != 1 || !strings.Contains(stderr, "set MCPBUS_MASTER_KEY") {
		t.Errorf("no key: %d %q", code, stderr)
	}
	// --key-env names another variable.
	t.Setenv("OPS_GATEWAY_KEY", cliMaster)
	if code, _, stderr := runCLI("keys", "list", "--url", f.srv.URL, "--key-env", "OPS_GATEWAY_KEY"); code != 0 {
		t.Errorf("--key-env: %d %q", code, stderr)
	}
	if code, _, stderr := runCLI("keys", "list", "--url", f.srv.URL, "--key-env", "NOT_SET_X"); code != 1 || !strings.Contains(stderr, "set NOT_SET_X") {
		t.Errorf("--key-env unset: %d %q", code, stderr)
	}
	// A wrong key: the server's message.
	t.Setenv("MCPBUS_MASTER_KEY", "sk-wrong")
	if code, _, stderr := runCLI("keys", "list", "--url", f.srv.URL+"/"); code != 1 || !strings.Contains(stderr, "invalid key (HTTP 401)") {
		t.Errorf("wrong key: %d %q", code, stderr)
	}
	// MCPBUS_URL is the default; nothing listening is a clear error.
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)
	if code, _, stderr := runCLI("keys", "list"); code != 1 || !strings.Contains(stderr, "cannot reach the gateway at http://127.0.0.1:1") {
		t.Errorf("unreachable: %d %q", code, stderr)
	}
	if strings.Contains(stderrOf(runCLI("keys", "list")), cliMaster) {
		t.Error("the master key was printed")
	}
	// Plain HTTP to a remote host draws a warning (the request itself fails here).
	if _, _, stderr := runCLI("keys", "list", "--url", "http://192.0.2.1:1"); !strings.Contains(stderr, "over plain HTTP") {
		t.Errorf("no plain-HTTP warning: %q", stderr)
	}
	if _, _, stderr := runCLI("keys", "list", "--url", f.srv.URL); strings.Contains(stderr, "plain HTTP") {
		t.Errorf("warned for loopback: %q", stderr)
	}
}

func stderrOf(_ int, _ string, stderr string) string { return stderr }

func TestKeysList(t *testing.T) {
	f := newFakeAdminAPI(t)
	t.Setenv("MCPBUS_URL", f.srv.URL)
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)
	f.reply("/key/list", 200, `{"keys":[
		{"token":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","key_alias":"ci","team_id":"t1","mcp_servers":["github","jira"],"expires":"2099-01-01T00:00:00Z","created_at":"2025-01-01T00:00:00Z"},
		{"token":"bbbbbbbbbbbbbbbbbbbbbbbb","blocked":true},
		{"token":"cccccccccccccccccccc","key_alias":"old","expires":"2001-01-01T00:00:00Z"},
		"dddddddddddddddddddddddd"
	],"total_count":4}`)
	code, stdout, stderr := runCLI("keys", "list", "--team", "t 1")
	if code != 0 {
		t.Fatalf("exit %d %q", code, stderr)
	}
	if reqs := f.taken(); len(reqs) != 1 || reqs[0].method != http.MethodGet || reqs[0].path != "/key/list" || reqs[0].query != "return_full_object=true&team_id=t+1" {
		t.Errorf("requests %+v", reqs)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	want := [][]string{
		{"TOKEN", "ALIAS", "TEAM", "SERVERS", "EXPIRES"},
		{"aaaaaaaaaaaa…", "ci", "t1", "github,jira", "2099-01-01T00:00:00Z"},
		{"bbbbbbbbbbbb…", "-", "-", "-", "never", "(blocked)"},
		{"cccccccccccc…", "old", "-", "-", "2001-01-01T00:00:00Z", "(expired)"},
		{"dddddddddddd…", "-", "-", "-", "never"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", stdout)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); !reflect.DeepEqual(got, w) {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
	// Columns line up.
	if col := func(line, s string) int { return utf8.RuneCountInString(line[:strings.Index(line, s)]) }; col(lines[0], "ALIAS") != col(lines[1], "ci") {
		t.Errorf("columns do not line up:\n%s", stdout)
	}

	// --full shows whole tokens; no --team asks for the full records only.
	if code, stdout, _ := runCLI("keys", "list", "--full"); code != 0 || !strings.Contains(stdout, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ") {
		t.Errorf("--full: %d\n%s", code, stdout)
	}
	if reqs := f.taken(); len(reqs) != 1 || reqs[0].query != "return_full_object=true" {
		t.Errorf("requests %+v", reqs)
	}
	// A bare list is read too; an empty one says so.
	f.reply("/key/list", 200, `[]`)
	if code, stdout, stderr := runCLI("keys", "list"); code != 0 || strings.Count(stdout, "\n") != 1 || !strings.Contains(stderr, "no keys") {
		t.Errorf("empty: %d %q %q", code, stdout, stderr)
	}
	f.reply("/key/list", 403, `{"error":{"message":"only the master key may manage keys and teams","type":"forbidden","param":null,"code":"MCPBUS_FORBIDDEN"}}`)
	if code, stdout, stderr := runCLI("keys", "list"); code != 1 || stdout != "" || !strings.Contains(stderr, "only the master key may manage keys and teams (HTTP 403)") {
		t.Errorf("403: %d %q %q", code, stdout, stderr)
	}
}

func TestKeysRevoke(t *testing.T) {
	f := newFakeAdminAPI(t)
	t.Setenv("MCPBUS_URL", "http://127.0.0.1:1")
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)
	tok1 := strings.Repeat("ab", 32)
	f.reply("/key/delete", 200, `{"deleted_keys":["`+tok1+`","sk-abc"]}`)
	// Flags may come after the arguments; a key and a whole token go as they are.
	code, stdout, stderr := runCLI("keys", "revoke", tok1, "--url", f.srv.URL, "sk-abc")
	if code != 0 || stdout != "revoked 2 key(s)\n" {
		t.Fatalf("exit %d %q %q", code, stdout, stderr)
	}
	reqs := f.taken()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || reqs[0].path != "/key/delete" ||
		!reflect.DeepEqual(reqs[0].body, map[string]any{"keys": []any{tok1, "sk-abc"}}) {
		t.Errorf("requests %+v", reqs)
	}
	if strings.Contains(stdout+stderr, "sk-abc") {
		t.Error("a revoked key was echoed")
	}
	if code, _, stderr := runCLI("keys", "revoke", "--url", f.srv.URL); code != 1 || !strings.Contains(stderr, "usage: mcpbus keys revoke") {
		t.Errorf("no args: %d %q", code, stderr)
	}
	f.reply("/key/delete", 404, `{"error":{"message":"key not found","type":"not_found","param":null,"code":"MCPBUS_NOT_FOUND"}}`)
	if code, stdout, stderr := runCLI("keys", "revoke", "--url", f.srv.URL, "sk-nope"); code != 1 || stdout != "" || !strings.Contains(stderr, "key not found (HTTP 404)") {
		t.Errorf("not found: %d %q %q", code, stdout, stderr)
	}
	f.taken()
}

// keys revoke takes what keys list prints: a token's prefix (with its "…"
// or without) or an alias, when it names exactly one key; otherwise it
// revokes nothing and says why.
func TestKeysRevokeByPrefixOrAlias(t *testing.T) {
	f := newFakeAdminAPI(t)
	t.Setenv("MCPBUS_URL", "http://127.0.0.1:1")
	t.Setenv("MCPBUS_MASTER_KEY", cliMaster)
	ci, bot, bot2 := "0123456789ab"+strings.Repeat("0", 52), "fedcba987654"+strings.Repeat("1", 52), "fedcba987655"+strings.Repeat("2", 52)
	f.reply("/key/list", 200, `{"keys":[{"token":"`+ci+`","key_alias":"ci"},{"token":"`+bot+`","key_alias":"bot"},{"token":"`+bot2+`"}]}`)
	f.reply("/key/delete", 200, `{}`)
	_, table, _ := runCLI("keys", "list", "--url", f.srv.URL)
	printed := strings.Fields(strings.Split(table, "\n")[1])[0] // the first key's token as listed
	f.taken()
	for _, tc := range []struct {
		arg, want string
	}{
		{printed, ci},
		{strings.TrimSuffix(printed, "…"), ci},
		{"bot", bot},
		{"fedcba987655", bot2},
	} {
		code, stdout, stderr := runCLI("keys", "revoke", "--url", f.srv.URL, tc.arg)
		reqs := f.taken()
		if code != 0 || stdout != "revoked 1 key(s)\n" || len(reqs) != 2 || !reflect.DeepEqual(reqs[1].body, map[string]any{"keys": []any{tc.want}}) {
			t.Errorf("revoke %q: exit %d %q %q, requests %+v; want %s deleted", tc.arg, code, stdout, stderr, reqs, tc.want)
		}
	}
	for _, tc := range []struct{ arg, want string }{
		{"fedcba98765", "names 2 keys"},
		{"0123", "at least 8 characters"},
		{"nobody", "no key has the alias or token prefix"},
	} {
		code, stdout, stderr := runCLI("keys", "revoke", "--url", f.srv.URL, "ci", tc.arg)
		for _, r := range f.taken() {
			if r.path == "/key/delete" {
				t.Errorf("revoke ci %q: a key was deleted: %+v", tc.arg, r)
			}
		}
		if code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "nothing revoked") && tc.want != "at least 8 characters" {
			t.Errorf("revoke %q: exit %d %q %q, want %q", tc.arg, code, stdout, stderr, tc.want)
		}
	}
}

func TestKeysUsage(t *testing.T) {
	if code, _, stderr := runCLI("keys"); code != 1 || !strings.Contains(stderr, "mcpbus keys create") {
		t.Errorf("no subcommand: %d %q", code, stderr)
	}
	if code, _, stderr := runCLI("keys", "rotate"); code != 1 || !strings.Contains(stderr, `unknown subcommand "rotate"`) {
		t.Errorf("unknown: %d %q", code, stderr)
	}
	if code, stdout, _ := runCLI("keys", "help"); code != 0 || !strings.Contains(stdout, "MCPBUS_MASTER_KEY") {
		t.Errorf("help: %d %q", code, stdout)
	}
	if code, stdout, _ := runCLI("help"); code != 0 || !strings.Contains(stdout, "mcpbus keys revoke") {
		t.Errorf("main usage lacks keys: %q", stdout)
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, c := range []struct {
		args []string
		pos  []string
		url  string
	}{
		{[]string{"a", "--url", "u", "b"}, []string{"a", "b"}, "u"},
		{[]string{"--url", "u", "a"}, []string{"a"}, "u"},
		{[]string{"a", "b", "--url=u"}, []string{"a", "b"}, "u"},
		{[]string{"a", "--", "-b", "--url", "x"}, []string{"a", "-b", "--url", "x"}, ""},
		{[]string{"--", "-b", "-c"}, []string{"-b", "-c"}, ""},
		{nil, nil, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		u := fs.String("url", "", "")
		pos, err := parseInterspersed(fs, c.args)
		if err != nil || !reflect.DeepEqual(pos, c.pos) || *u != c.url {
			t.Errorf("%q: %q url %q %v", c.args, pos, *u, err)
		}
	}
}

func TestXFFWarnings(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	for _, c := range []struct {
		cfg  config.File
		want string
	}{
		{config.File{XFFNumTrustedHops: 1}, ""},
		{config.File{UseXForwardedFor: true, TrustedProxyRanges: proxies, XFFNumTrustedHops: 2}, ""},
		{config.File{UseXForwardedFor: true, XFFNumTrustedHops: 1}, "mcp_trusted_proxy_ranges is empty: X-Forwarded-For is ignored"},
		{config.File{TrustedProxyRanges: proxies, XFFNumTrustedHops: 1}, "have no effect while use_x_forwarded_for is off"},
		{config.File{XFFNumTrustedHops: 3}, "have no effect while use_x_forwarded_for is off"},
	} {
		got := strings.Join(xffWarnings(&c.cfg), "\n")
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q, want %q", c.cfg, got, c.want)
		}
	}
}
