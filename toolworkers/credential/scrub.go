package credential

// Scrubbing. An upstream sees the credentials mcpbus sends it and may send
// them back: a server that echoes its request headers inside an error's data
// would hand the configured credential to whoever called. So the worker
// replaces every value it injected upstream with bus.Redacted in everything
// it relays towards the client: results and errors (error.message and
// error.data included), the initialize result (info), the notifications and
// server-to-client requests relayed from a call's stream or a session's GET
// stream, and gateway error messages that quote the upstream.
//
// The values: every header value the link's upstream client sets (the
// auth_type header, static_headers, a caller's per-request headers), whole
// ("Bearer abc…") and without its scheme ("abc…"), for Basic also decoded
// ("user:password") and the password alone; the AWS access key id, secret
// key and session token and the OAuth2 client secret; the OAuth2 access
// tokens the worker used lately (recentSecrets, fed by oauth2.go) and the
// SigV4 signatures of its recent requests (signatureLog, fed by sigv4.go).
// A value shorter than minSecretLen bytes is left alone: scrubbing "a"
// everywhere would corrupt answers.
//
// The forms: a value appears raw or escaped inside a JSON string, and
// encoders differ: \" and \\ always, "\/" for '/' (PHP), \uXXXX for non-ASCII
// (Python, PHP) and for <, >, & (Go), in lower or upper case hex. Each
// combination is looked for, and each once more escaped (JSON text inside a
// JSON string, as MCP tool results often carry).
//
// The cost: a server without credentials gets no scrubber at all. Otherwise
// a message costs one bytes.Contains per value (plus, on SigV4 servers, a
// scan for 64-digit hex runs); only a message that holds a value is
// rewritten, by a walk that replaces it inside JSON strings (a JSON number
// that holds one becomes the string "[redacted]"), so the answer stays valid
// JSON.
//
// The hook is the worker's (toolworkers/scrub.go): the link's upstream
// cleans what Call, Notify and Info return, hands the call's relay its
// Scrubber (which cleans notifications and requests before they are
// published) and wraps the link's sessionEvents (the GET stream).

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// minSecretLen is the shortest value the worker scrubs.
const minSecretLen = 6

// maxRecentTokens OAuth2 access tokens are scrubbed: the current one and
// those it replaced, whose calls may still be answering.
const maxRecentTokens = 4

// maxSignatures SigV4 signatures, those of the replica's latest requests, are
// scrubbed.
const maxSignatures = 1024

var (
	redactedBytes  = []byte(bus.Redacted)
	redactedString = []byte(`"` + bus.Redacted + `"`) // for a JSON number that holds a value
)

// Scrubber holds what one link's answers are cleaned of. Its methods are
// safe on a nil *Scrubber, which cleans nothing.
type Scrubber struct {
	static *secretSet     // the link's header values and the configured keys
	tokens *recentSecrets // OAuth2 access tokens (nil: not an oauth2 server)
	sigs   *signatureLog  // SigV4 signatures (nil: not an aws_sigv4 server)
}

// Scrubber collects the values to scrub for a link whose upstream client
// sends header: each header value, the server's configured credentials, and
// the tokens and signatures c sends. nil: there are none.
func (c *Client) Scrubber(header http.Header) *Scrubber {
	var values []string
	for _, vs := range header {
		for _, v := range vs {
			values = append(values, secretValues(v)...)
		}
	}
	s := &Scrubber{}
	if c != nil {
		values = append(values, c.configured()...)
		s.tokens, s.sigs = c.tokens, c.sigs
	}
	s.static = newSecretSet(values)
	if s.static == nil && s.tokens == nil && s.sigs == nil {
		return nil
	}
	return s
}

// NewScrubber cleans the values given (and, for a header value, what
// secretValues finds in it): an LLM worker's provider key and headers. nil
// when there are none.
func NewScrubber(values ...string) *Scrubber {
	var all []string
	for _, v := range values {
		all = append(all, secretValues(v)...)
	}
	if set := newSecretSet(all); set != nil {
		return &Scrubber{static: set}
	}
	return nil
}

// configured are the server's credentials that are not header values.
func (c *Client) configured() []string {
	var values []string
	up := c.up
	if a := up.AWS; a != nil {
		values = append(values, a.AccessKeyID, a.SecretAccessKey, a.SessionToken)
	}
	if o := up.OAuth2; o != nil {
		values = append(values, o.ClientSecret)
		values = append(values, urlSecrets(o.TokenURL)...)
	}
	if o := up.UserOAuth; o != nil {
		values = append(values, o.ClientSecret)
		values = append(values, urlSecrets(o.TokenURL)...)
		values = append(values, urlSecrets(o.AuthorizationURL)...)
	}
	if up.URL != nil {
		values = append(values, urlSecrets(up.URL.String())...)
	}
	for _, kv := range up.Env { // NAME=value
		if name, v, ok := strings.Cut(kv, "="); ok && secretName(name) {
			values = append(values, v)
		}
	}
	return values
}

// secretValues are the values one header value gives: itself, the part after
// its scheme, and for Basic the decoded user:password and the password.
func secretValues(v string) []string {
	var out []string
	add := func(s string) {
		if s = strings.TrimSpace(s); len(s) >= minSecretLen {
			out = append(out, s)
		}
	}
	v = strings.TrimSpace(v)
	add(v)
	if scheme, rest, ok := strings.Cut(v, " "); ok {
		rest = strings.TrimSpace(rest)
		add(rest)
		if strings.EqualFold(scheme, "basic") {
			if dec, err := base64.StdEncoding.DecodeString(rest); err == nil {
				add(string(dec))
				if _, pw, ok := strings.Cut(string(dec), ":"); ok {
					add(pw)
				}
			}
		}
	}
	return out
}

// JSON returns b without any value, b itself when it holds none.
func (s *Scrubber) JSON(b []byte) []byte {
	if s == nil || len(b) == 0 {
		return b
	}
	if set := s.static; set != nil && set.present(b) {
		b = scrubJSON(b, set)
	}
	if s.tokens != nil {
		if set := s.tokens.load(); set != nil && set.present(b) {
			b = scrubJSON(b, set)
		}
	}
	if s.sigs != nil && s.sigs.present(b) {
		b = scrubJSON(b, s.sigs)
	}
	return b
}

// Text returns msg (plain text, as in an error message) without any value.
func (s *Scrubber) Text(msg string) string {
	if s == nil || msg == "" {
		return msg
	}
	msg = s.static.text(msg)
	if s.tokens != nil {
		msg = s.tokens.load().text(msg)
	}
	if s.sigs != nil {
		msg = s.sigs.text(msg)
	}
	return msg
}

// Message returns m with clean params (a copy if they changed).
func (s *Scrubber) Message(m *bus.Message) *bus.Message {
	if s == nil || m == nil {
		return m
	}
	if p := s.JSON(m.Params); changed(p, m.Params) {
		c := *m
		c.Params = p
		return &c
	}
	return m
}

// Response returns the response m with a clean result or error (a copy if
// they changed).
func (s *Scrubber) Response(m *bus.Message) *bus.Message {
	if s == nil || m == nil {
		return m
	}
	result, rpcErr := s.JSON(m.Result), s.JSON(m.Error)
	if changed(result, m.Result) || changed(rpcErr, m.Error) {
		c := *m
		c.Result, c.Error = result, rpcErr
		return &c
	}
	return m
}

// Err returns err with a clean message; a gateway error quoting the upstream
// (a refused initialize) may repeat what the upstream said.
func (s *Scrubber) Err(err error) error {
	var e *bus.Error
	if s == nil || !errors.As(err, &e) {
		return err
	}
	if msg := s.Text(e.Message); msg != e.Message {
		c := *e
		c.Message = msg
		return &c
	}
	return err
}

func changed(out, in []byte) bool {
	return len(out) != len(in) || len(in) > 0 && &out[0] != &in[0]
}

// urlSecrets are the credentials a URL carries: its password, user:password
// and that as HTTP Basic sends it (Go sends a URL's user that way), and each
// query value (api_key=..., token=...).
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			userpass := u.User.Username() + ":" + pw
			out = append(out, pw, userpass, base64.StdEncoding.EncodeToString([]byte(userpass)))
		}
	}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	return out
}

// secretName reports whether a stdio env variable's name says it holds a
// credential. Only those are scrubbed: other values (HOME, PATH, a region)
// appear in ordinary answers, and scrubbing them would corrupt them.
func secretName(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "KEY", "SECRET", "PASS", "PWD", "AUTH", "CRED", "COOKIE", "SESSION"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
