package bus

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Fuzz targets for the envelope (envelope.go) and for every subject and KV
// key made from a caller's value (limits.go, subjects.go, stream.go,
// usage.go): what a client sends can never make a header or a subject that
// takes a service off the bus.

// FuzzEnvelope reads arbitrary envelope headers (what any bus user could
// publish) and builds envelopes from the same values directly: ReadEnvelope
// and Validate never panic; every envelope accepted survives WriteTo ->
// ReadEnvelope unchanged; every header value WriteTo writes for it is
// printable, bounded text; and every subject built from its accepted values
// (the session's event subject, the selected servers' rpc subjects) is well
// formed and bounded.
func FuzzEnvelope(f *testing.F) {
	long := strings.Repeat("x", 5000)
	type seed struct {
		requestID, keyID, alias, team, admin, ipClass, perms, deadline, stream, servers, session, version, caps, logLevel, fwdName, fwdValue string
	}
	for _, s := range []seed{
		{"req-1", "k1", "ci-bot", "platform", "true", "internal", `{"all_servers":false,"servers":["github"],"tools":{"github":["search"]}}`, "1790000000123", "_INBOX.abc", "github,internal-db", "s-1", "2025-06-18", `{"sampling":{}}`, "info", "X-Tenant", "t1"},
		{"", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""},
		{"r", "k", "", "", "TRUE", "INTERNAL", "", "-62135596800000", "", "a", "", "", "", "", "X-Mcp-Github-Authorization", "Bearer gh"},
		{"r", "k", "", "", "", "external", `{"all_servers":true,"servers":["x"]}`, "+5", "", "", "", "", "", "", "", ""},
		{"r", "k", "", "", "", "internal", `{"servers":[],"tools":{}}`, "soon", "", "", "", "", "", "", "", ""},
		// Attacks: a 5,000-byte session id, control characters, a long
		// selection, wildcards, forwarded headers that are not headers.
		{"r", "k", "", "", "", "", "", "", "", "", long, "", "", "", "", ""},
		{"r", "k", "", "", "", "", "", "", "", "a,,b", "s*", "", "", "", "", ""},
		{"r", "k", "", "", "", "", "", "", "", strings.Repeat("s,", 64) + "s", "s.>", "", "", "", "", ""},
		{"r\r\nX: y", "k", "", "", "", "", "", "", "", "a b", "s 1", "", "", "", "X-A", "v\r\nX-Injected: 1"},
		{"r", "k", "", "", "", "", "", "", "", "", "", "", strings.Repeat("{", 20000), "", "Bad Name", "v"},
		{"r", "k", "", "", "", "", "", "", "", "", "", "", "", "", "X:Y", strings.Repeat("v", MaxHeaderValue+1)},
		{"r", "k", "", "", "", "", "", "", "", "", "", "", "", "", "", "\xff"},
	} {
		f.Add(s.requestID, s.keyID, s.alias, s.team, s.admin, s.ipClass, s.perms, s.deadline, s.stream, s.servers, s.session, s.version, s.caps, s.logLevel, s.fwdName, s.fwdValue)
	}
	f.Fuzz(func(t *testing.T, requestID, keyID, alias, team, admin, ipClass, perms, deadline, stream, servers, session, version, caps, logLevel, fwdName, fwdValue string) {
		// 1. The headers as they arrive.
		h := nats.Header{}
		for k, v := range map[string]string{
			HeaderRequestID: requestID, HeaderKeyID: keyID, HeaderKeyAlias: alias, HeaderTeam: team,
			HeaderAdmin: admin, HeaderIPClass: ipClass, HeaderPermissions: perms, HeaderDeadline: deadline,
			HeaderStream: stream, HeaderServers: servers, HeaderSession: session, HeaderProtocolVer: version,
			HeaderClientCapabilities: caps, HeaderLogLevel: logLevel, HeaderForwardPrefix + fwdName: fwdValue,
		} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		if env, err := ReadEnvelope(h); err == nil {
			checkEnvelope(t, env)
		} else if err.Error() == "" {
			t.Fatal("an error without a message")
		}

		// 2. The same values as an envelope the ingress builds.
		env := Envelope{
			RequestID: requestID,
			Caller: Identity{KeyID: keyID, Alias: alias, Team: team, Admin: admin != "",
				Permissions: DecodePermissions(perms)},
			Stream: stream, Session: session, ProtocolVersion: version,
			ClientCapabilities: json.RawMessage(caps), LogLevel: logLevel,
		}
		// The IP class is the ingress's own verdict, never a caller's value.
		switch {
		case strings.HasPrefix(ipClass, "i"):
			env.IPClass = Internal
		case strings.HasPrefix(ipClass, "e"):
			env.IPClass = External
		}
		if ms, err := strconv.ParseInt(deadline, 10, 64); err == nil {
			env.Deadline = time.UnixMilli(ms)
		}
		if servers != "" {
			env.Servers = strings.Split(servers, ",")
		}
		if fwdName != "" {
			env.Forward = map[string]string{fwdName: fwdValue}
		}
		if env.Validate() == nil {
			checkEnvelope(t, env)
		}
	})
}

// checkEnvelope checks an envelope Validate accepts: its headers, its round
// trip and the subjects made from it.
func checkEnvelope(t *testing.T, env Envelope) {
	t.Helper()
	if e := env.Validate(); e != nil {
		t.Fatalf("ReadEnvelope returned an envelope Validate refuses: %v", e)
	}
	h := nats.Header{}
	env.WriteTo(h)
	for k, vs := range h {
		if k == "" || strings.ContainsAny(k, " \t\r\n:") || !utf8.ValidString(k) {
			t.Fatalf("header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("header %s has a line break: %q", k, v)
			}
			// Permissions are auth's answer, not a caller's value: JSON from
			// json.Marshal, bounded by what an admin configured.
			if k == HeaderPermissions {
				if !json.Valid([]byte(v)) {
					t.Fatalf("permissions header %q is not JSON", v)
				}
				continue
			}
			if len(v) > MaxHeaderValue || !ValidHeaderValue(v) {
				t.Fatalf("header %s: a value of %d bytes that cannot travel: %q", k, len(v), Shorten(v, 200))
			}
		}
	}
	back, err := ReadEnvelope(h)
	if err != nil {
		t.Fatalf("an accepted envelope does not read back: %v\nenvelope %+v\nheaders %q", err, env, h)
	}
	if diff := envelopeDiff(env, back); diff != "" {
		t.Fatalf("round trip changed %s\n in: %+v\nout: %+v", diff, env, back)
	}
	if env.Session != "" {
		checkSubject(t, SessionSubject(env.Session), 512)
	}
	for _, s := range env.Servers {
		checkSubject(t, ToolRPC(s), 512)
		checkSubject(t, ToolInfo(s), 512)
		checkSubject(t, NotifySubject(s), 512)
	}
}

// envelopeDiff names the first field in which out differs from in, comparing
// by meaning where the header form has one spelling for several values: an
// empty IP class is external, permissions compare by their encoding (servers
// beside all_servers and empty lists carry nothing), empty lists and maps
// are absent ones, and deadlines compare as instants.
func envelopeDiff(in, out Envelope) string {
	class := func(c IPClass) IPClass {
		if c == Internal {
			return Internal
		}
		return External
	}
	switch {
	case in.RequestID != out.RequestID:
		return "RequestID"
	case in.Caller.KeyID != out.Caller.KeyID || in.Caller.Alias != out.Caller.Alias || in.Caller.Team != out.Caller.Team || in.Caller.Org != out.Caller.Org || in.Caller.Admin != out.Caller.Admin:
		return "Caller"
	case EncodePermissions(in.Caller.Permissions) != EncodePermissions(out.Caller.Permissions):
		return "Caller.Permissions"
	case class(in.IPClass) != class(out.IPClass):
		return "IPClass"
	case !in.Deadline.Equal(out.Deadline):
		return "Deadline"
	case in.Stream != out.Stream:
		return "Stream"
	case !slices.Equal(in.Servers, out.Servers):
		return "Servers"
	case in.Session != out.Session:
		return "Session"
	case in.ProtocolVersion != out.ProtocolVersion:
		return "ProtocolVersion"
	case !maps.Equal(in.Forward, out.Forward):
		return "Forward"
	case string(in.ClientCapabilities) != string(out.ClientCapabilities):
		return "ClientCapabilities"
	case in.LogLevel != out.LogLevel:
		return "LogLevel"
	}
	return ""
}

// checkSubject checks a subject is at most max bytes of dot-separated,
// non-empty tokens without whitespace, wildcards or control characters.
func checkSubject(t *testing.T, subject string, max int) {
	t.Helper()
	if len(subject) > max || !utf8.ValidString(subject) {
		t.Fatalf("subject of %d bytes: %q", len(subject), Shorten(subject, 200))
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n\f\v") || strings.IndexFunc(tok, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.Fatalf("subject %q has the token %q", Shorten(subject, 200), Shorten(tok, 64))
		}
	}
}

var s2cSubjectRE = regexp.MustCompile(`^mcpbus\.v1\.s2c\.([A-Za-z0-9_-]{1,128})\.([A-Za-z0-9_-]{1,128})\.([0-9]{1,20})$`)

// maxS2CSubject is the longest reply subject: a server name and a worker
// token of MaxTokenLen, and 20 digits.
const maxS2CSubject = len(Root+".s2c.") + 2*MaxTokenLen + 2 + 20

// FuzzServerRequestReplySubject: no JSON-RPC id a client sends makes a reply
// subject other than mcpbus.v1.s2c.<server>.<token>.<digits> of at most
// maxS2CSubject bytes, and every id the gateway makes (ServerRequestID)
// makes the subject its worker replica listens on.
func FuzzServerRequestReplySubject(f *testing.F) {
	long := strings.Repeat("x", 5000)
	for _, s := range []string{
		`"mcpbus-s2c.w1.3"`,
		`"mcpbus-s2c.demo.w1.3"`,
		`"mcpbus-s2c.demo.w1.18446744073709551615"`,
		`"mcpbus-s2c.demo.` + long + `.1"`,
		`"mcpbus-s2c.w1.18446744073709551615"`,
		`"mcpbus-s2c.w1.99999999999999999999"`,
		`"mcpbus-s2c.w1.999999999999999999999"`,
		`"mcpbus-s2c.` + long + `.1"`,
		`"mcpbus-s2c.w1.` + long + `"`,
		`"mcpbus-s2c.*.1"`, `"mcpbus-s2c.>.1"`, `"mcpbus-s2c.w 1.1"`, `"mcpbus-s2c.w1.1.2"`,
		`"mcpbus-s2c.w1.1 "`, `"mcpbus-s2c.w1.-1"`, `"mcpbus-s2c..1"`, `"mcpbus-s2c.w1."`,
		`"mcpbus-s2c.w\u002e1.1"`, `"mcpbus-s2c.w1.\u0031"`, `"mcpbus-s2c.w1.١"`,
		`1`, `null`, `{}`, `"x"`, ``, `"`,
	} {
		f.Add([]byte(s), "w1", uint64(3))
	}
	f.Add([]byte(`"mcpbus-s2c.a.0"`), strings.Repeat("t", MaxTokenLen), uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, id []byte, token string, n uint64) {
		if subject, ok := ServerRequestReplySubject(id); ok {
			if len(subject) > maxS2CSubject {
				t.Fatalf("subject of %d bytes", len(subject))
			}
			checkSubject(t, subject, maxS2CSubject)
			m := s2cSubjectRE.FindStringSubmatch(subject)
			if m == nil {
				t.Fatalf("subject %q is not mcpbus.v1.s2c.<server>.<token>.<digits>", subject)
			}
			var s string
			if err := json.Unmarshal(id, &s); err != nil || s != "mcpbus-s2c."+m[1]+"."+m[2]+"."+m[3] {
				t.Fatalf("id %q gave the subject %q", id, subject)
			}
		} else if subject != "" {
			t.Fatalf("a subject %q with ok false", subject)
		}
		if !ValidToken(token) {
			return
		}
		made, _ := json.Marshal(ServerRequestID("srv", token, n))
		subject, ok := ServerRequestReplySubject(made)
		if !ok || subject != Root+".s2c.srv."+token+"."+strconv.FormatUint(n, 10) {
			t.Fatalf("the gateway's own id %s gives %q, %v", made, subject, ok)
		}
		if !strings.HasPrefix(subject, strings.TrimSuffix(ServerRequestSubjects("srv", token), "*")) {
			t.Fatalf("subject %q is not under %q", subject, ServerRequestSubjects("srv", token))
		}
	})
}

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// maxUsageSubject is the longest UsageSubject: three tokens of MaxTokenLen.
const maxUsageSubject = len(Root+".usage.") + 3*MaxTokenLen + 2

// FuzzSubjectTokens: the checks on a caller's session id, server selection
// and tokens, and UsageSubject, whatever the inputs: ValidToken is exactly
// 1-128 of A-Z a-z 0-9 _ -; CheckSessionID and CheckSelection accept exactly
// what may become a subject token, with bounded error messages; subjects
// built from accepted values, and every UsageSubject, are well formed and
// bounded (UsageSubject: 6 tokens, valid UTF-8, at most maxUsageSubject
// bytes, the parts kept verbatim when they are tokens).
func FuzzSubjectTokens(f *testing.F) {
	long := strings.Repeat("x", 5000)
	for _, s := range [][3]string{
		{"platform", "github", "search_issues"},
		{"", "", ""},
		{"a.b", "s", "x*y>z w"},
		{long, long, long},
		{strings.Repeat("t", MaxTokenLen), strings.Repeat("s", MaxTokenLen), strings.Repeat("n", MaxTokenLen)},
		{strings.Repeat("t", MaxTokenLen+1), "s", "名前"},
		{"\xff\xfe", "s\x00", "tool\r\nname"},
		{"mcpbus-s2c." + long + ".1", "a,b,c", ">"},
		{"*", "github,,x", "\t"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Add(long, strings.Repeat("a,", MaxSelection)+"a", "t")
	f.Fuzz(func(t *testing.T, team, server, tool string) {
		for _, s := range []string{team, server, tool} {
			valid := ValidToken(s)
			if valid != tokenRE.MatchString(s) {
				t.Fatalf("ValidToken(%q) = %v", s, valid)
			}
			e := CheckSessionID(s, "Mcp-Session-Id")
			if (e == nil) != valid {
				t.Fatalf("CheckSessionID(%q) = %v; ValidToken %v", Shorten(s, 64), e, valid)
			}
			if e != nil && len(e.Message) > 512 {
				t.Fatalf("CheckSessionID error of %d bytes", len(e.Message))
			}
			if valid {
				checkSubject(t, SessionSubject(s), 512)
				checkSubject(t, ToolRPC(s), 512)
				checkSubject(t, ToolInfo(s), 512)
				checkSubject(t, ToolQueue(s), 512)
			}
		}
		names := strings.Split(server, ",")
		e := CheckSelection(names, "x-mcp-servers")
		want := len(names) <= MaxSelection
		for _, n := range names {
			want = want && ValidToken(n)
		}
		if (e == nil) != want {
			t.Fatalf("CheckSelection(%q) = %v", Shorten(server, 64), e)
		}
		if e != nil && len(e.Message) > 512 {
			t.Fatalf("CheckSelection error of %d bytes", len(e.Message))
		}
		if e == nil {
			for _, n := range names {
				checkSubject(t, ToolRPC(n), 512)
			}
		}

		subject := UsageSubject(team, server, tool)
		checkSubject(t, subject, maxUsageSubject)
		toks := strings.Split(subject, ".")
		if len(toks) != 6 || toks[0]+"."+toks[1]+"."+toks[2] != Root+".usage" {
			t.Fatalf("usage subject %q", subject)
		}
		for i, part := range []string{team, server, tool} {
			tok := toks[3+i]
			if !ValidToken(tok) {
				t.Fatalf("usage subject %q has the token %q", subject, tok)
			}
			if ValidToken(part) && tok != part {
				t.Fatalf("usage subject %q changed the token %q", subject, part)
			}
		}
	})
}
