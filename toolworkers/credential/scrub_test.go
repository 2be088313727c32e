package credential

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// encoders write a JSON string the ways upstreams do.
var encoders = map[string]func(string) string{
	"go": func(s string) string { b, _ := json.Marshal(s); return string(b) },
	"go-no-html": func(s string) string {
		var buf bytes.Buffer
		e := json.NewEncoder(&buf)
		e.SetEscapeHTML(false)
		_ = e.Encode(s)
		return strings.TrimSuffix(buf.String(), "\n")
	},
	"php":    func(s string) string { return testEscape(s, true, false) },
	"python": func(s string) string { return testEscape(s, false, false) },
	"java":   func(s string) string { return testEscape(s, false, true) },
}

// testEscape escapes '/' (PHP) and every non-ASCII rune (PHP, Python; Java
// libraries in upper case).
func testEscape(s string, slash, upper bool) string {
	f := `\u%04x`
	if upper {
		f = `\u%04X`
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r == '/' && slash:
			b.WriteString(`\/`)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, f+f, 0xd800+(r>>10)&0x3ff, 0xdc00+r&0x3ff)
		case r < 0x20 || r > 0x7e:
			fmt.Fprintf(&b, f, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Each value, written by each encoder, once or nested in a string, in a
// key, among other text: the scrubbed message is valid JSON, holds
// [redacted], and decodes to text without the value.
func TestScrubJSONEveryEncoding(t *testing.T) {
	values := []string{
		"plain-token-0123456789",
		"slash/and+plus/base64==",
		`quote"and\backslash-secret`,
		"html<&>secret-value",
		"non-ascii-é-ß-secret",
		"emoji-😀-secret-value",
	}
	set := newSecretSet(values)
	for _, v := range values {
		for name, enc := range encoders {
			for _, nested := range []bool{false, true} {
				s := enc("before " + v + " after")
				if nested { // JSON text inside a JSON string
					s = enc(`{"k":` + s + `}`)
				}
				in := []byte(`{"jsonrpc":"2.0","id":1,"result":{"text":` + s + `,` + enc(v) + `:[` + enc(v) + `,1]}}`)
				if !set.present(in) {
					t.Errorf("%s nested=%v: %q not found in %s", name, nested, v, in)
					continue
				}
				out := scrubJSON(in, set)
				if !json.Valid(out) {
					t.Fatalf("%s nested=%v: invalid JSON: %s", name, nested, out)
				}
				if bytes.Count(out, []byte(bus.Redacted)) != 3 {
					t.Errorf("%s nested=%v: %s", name, nested, out)
				}
				if decoded := decodeAll(t, out); strings.Contains(decoded, v) {
					t.Errorf("%s nested=%v: the value survives: %s", name, nested, decoded)
				}
			}
		}
	}
}

// decodeAll returns every string in a JSON document, decoded, and decoded
// again where it is JSON itself.
func decodeAll(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, x)
			var inner any
			if json.Unmarshal([]byte(x), &inner) == nil {
				walk(inner)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				out = append(out, k)
				walk(e)
			}
		}
	}
	walk(v)
	return strings.Join(out, "\n")
}

// A message without any value is returned as it came: no copy, no
// allocation.
func TestScrubJSONNothingFoundCostsNothing(t *testing.T) {
	s := &Scrubber{static: newSecretSet(secretValues("Bearer plain-token-0123456789"))}
	in := []byte(`{"content":[{"type":"text","text":"hello, nothing secret here"}],"isError":false}`)
	var out []byte
	if allocs := testing.AllocsPerRun(100, func() { out = s.JSON(in) }); allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
	if &out[0] != &in[0] {
		t.Error("a message without a value was copied")
	}
}

// Numbers holding a value become the string "[redacted]"; text inside an
// escape sequence is not a value (the decoded string does not hold it).
func TestScrubJSONStaysValid(t *testing.T) {
	set := newSecretSet([]string{"12345678", "00e9abcdef"})
	for in, want := range map[string]string{
		`{"a":9123456789,"b":"x12345678y"}`: `{"a":"[redacted]","b":"x[redacted]y"}`,
		`[-12345678.5e3]`:                   `["[redacted]"]`,
		`{"t":"\u00e9abcdef"}`:              `{"t":"\u00e9abcdef"}`,
		`{"t":"\\00e9abcdef"}`:              `{"t":"\\[redacted]"}`,
	} {
		if got := string(scrubJSON([]byte(in), set)); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

// The values a header gives: whole, without its scheme, Basic decoded and
// its password; none shorter than minSecretLen.
func TestSecretValues(t *testing.T) {
	for v, want := range map[string]string{
		"Bearer abc":                      "Bearer abc",
		"Bearer abcdefgh":                 "Bearer abcdefgh|abcdefgh",
		"Basic dXNlcjpwYXNzd29yZA==":      "Basic dXNlcjpwYXNzd29yZA==|dXNlcjpwYXNzd29yZA==|user:password|password",
		"sk-live-key":                     "sk-live-key",
		"short":                           "",
		"AWS4-HMAC-SHA256 Credential=AKI": "AWS4-HMAC-SHA256 Credential=AKI|Credential=AKI",
	} {
		if got := strings.Join(secretValues(v), "|"); got != want {
			t.Errorf("secretValues(%q) = %q, want %q", v, got, want)
		}
	}
	if newSecretSet([]string{"a", "12345", ""}) != nil {
		t.Error("values under 6 bytes make a set")
	}
}

// Plain text (a gateway error quoting the upstream) loses every form; the
// error keeps its kind.
func TestScrubErrorMessage(t *testing.T) {
	s := &Scrubber{static: newSecretSet(secretValues("Bearer tok/en-0123456789"))}
	err := s.Err(bus.Errorf(bus.ErrUpstreamProtocol, `refused initialize: bad header "Bearer tok/en-0123456789" (tok\/en-0123456789)`))
	e := bus.AsError(err)
	if e.Kind != bus.ErrUpstreamProtocol || e.Message != `refused initialize: bad header "[redacted]" ([redacted])` {
		t.Errorf("%v: %q", e.Kind.Code, e.Message)
	}
	plain := bus.Errorf(bus.ErrUpstreamTimeout, "slow")
	if s.Err(plain) != plain {
		t.Error("an error without a value was copied")
	}
}

// SigV4 signatures are scrubbed while they are among the latest; other hex
// runs (a presigned URL's own signature, a hash) are left alone.
func TestSignatureLog(t *testing.T) {
	l := new(signatureLog)
	sig := strings.Repeat("ab12", 16)
	other := strings.Repeat("cd34", 16)
	l.add("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host, Signature=" + sig)
	in := []byte(`{"h":"Signature=` + sig + `","o":"` + other + `","long":"` + sig + `0"}`)
	if got, want := string(scrubJSON(in, l)), `{"h":"Signature=[redacted]","o":"`+other+`","long":"`+sig+`0"}`; !l.present(in) || got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := l.text("sig " + sig + "."); got != "sig [redacted]." {
		t.Errorf("text: %q", got)
	}
	for i := range maxSignatures {
		l.add(fmt.Sprintf("Signature=%064x", i))
	}
	if l.present(in) {
		t.Error("a signature older than the latest maxSignatures is still scrubbed")
	}
}

// OAuth2: the latest maxRecentTokens tokens are scrubbed, whole header and
// token alone.
func TestRecentTokens(t *testing.T) {
	var r recentSecrets
	for i := range maxRecentTokens + 1 {
		r.add(fmt.Sprintf("Bearer token-%d-0123456789", i))
	}
	s := &Scrubber{tokens: &r}
	out := string(s.JSON([]byte(`["Bearer token-0-0123456789","token-1-0123456789","Bearer token-4-0123456789"]`)))
	if out != `["Bearer token-0-0123456789","[redacted]","[redacted]"]` {
		t.Errorf("%s", out)
	}
}

// The scrubber alone on a typical tools/call result: the check every answer
// of a server with a credential pays, and the rewrite of one that holds it.
func BenchmarkScrubResult(b *testing.B) {
	s := (*Client)(nil).Scrubber(http.Header{"Authorization": {"Bearer bench-token-0123456789abcdef"}, "X-Tenant": {"bench-tenant-42"}})
	clean := []byte(`{"content":[{"type":"text","text":"` + strings.Repeat("lorem ipsum dolor sit amet ", 40) + `"}],"isError":false}`)
	echoed := []byte(`{"content":[{"type":"text","text":"` + strings.Repeat("lorem ipsum dolor sit amet ", 40) + `Authorization: Bearer bench-token-0123456789abcdef"}]}`)
	for _, c := range []struct {
		name string
		in   []byte
	}{{"clean", clean}, {"echoed", echoed}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.in)))
			for b.Loop() {
				_ = s.JSON(c.in)
			}
		})
	}
}

// Credentials that reach the upstream other than as headers (found by the
// attack review): a URL's user and password (sent as HTTP Basic) and its
// query values, the OAuth2 token URL's, and stdio env values whose names say
// they are credentials. Other env values (paths) are left alone.
func TestScrubURLAndEnvCredentials(t *testing.T) {
	u, _ := url.Parse("http://urluser:urlpass-secret-1234@127.0.0.1:1/mcp?api_key=url-query-secret-xyz&page=1")
	c := &Client{up: &config.Upstream{Name: "s", URL: u,
		OAuth2: &config.OAuth2{TokenURL: "https://idp.example/token?client_assertion=token-url-secret-42", ClientSecret: "client-secret-0001"},
		Env:    []string{"API_TOKEN=stdio-env-secret-abcdef", "HOME=/home/mcpbus-user", "DB_PASSWORD=db-password-000"}}}
	s := c.Scrubber(nil)
	if s == nil {
		t.Fatal("nothing to scrub")
	}
	in := `{"error":{"code":-1,"message":"rejected urlpass-secret-1234 url-query-secret-xyz token-url-secret-42 stdio-env-secret-abcdef db-password-000 ` +
		`Basic dXJsdXNlcjp1cmxwYXNzLXNlY3JldC0xMjM0 client-secret-0001 home=/home/mcpbus-user"}}`
	out := string(s.JSON([]byte(in)))
	for _, secret := range []string{"urlpass-secret-1234", "url-query-secret-xyz", "token-url-secret-42", "stdio-env-secret-abcdef",
		"db-password-000", "dXJsdXNlcjp1cmxwYXNzLXNlY3JldC0xMjM0", "client-secret-0001"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q not scrubbed: %s", secret, out)
		}
	}
	if !strings.Contains(out, "/home/mcpbus-user") {
		t.Errorf("a path in env was scrubbed: %s", out)
	}
}
