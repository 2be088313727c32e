package toolworkers

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
// The hook is the link's upstream (links.go newLink): scrubbedUpstream
// cleans what Call, Notify and Info return, hands the call's relay its
// scrubber (relay.go cleans notifications and requests before they are
// published) and wraps the link's sessionEvents (the GET stream).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

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

// scrubber holds what one link's answers are cleaned of.
type scrubber struct {
	static *secretSet     // the link's header values and the configured keys
	tokens *recentSecrets // OAuth2 access tokens (nil: not an oauth2 server)
	sigs   *signatureLog  // SigV4 signatures (nil: not an aws_sigv4 server)
}

// scrubbedUpstream returns the upstream client for a link (header, caps and
// events as for newUpstream), wrapped so that nothing it returns or relays
// carries a value in header or another credential of the server. A server
// without any gets the bare client.
func (w *Worker) scrubbedUpstream(header http.Header, caps json.RawMessage, events sessionEvents) upstream {
	s := w.scrubberFor(header)
	if s == nil {
		return w.newUpstream(header, caps, events)
	}
	return &scrubbingUpstream{upstream: w.newUpstream(header, caps, scrubbedEvents{events, s}), s: s}
}

// scrubberFor collects the values to scrub for a client that sends header.
// nil: there are none.
func (w *Worker) scrubberFor(header http.Header) *scrubber {
	var values []string
	for _, vs := range header {
		for _, v := range vs {
			values = append(values, secretValues(v)...)
		}
	}
	if w.up != nil {
		if a := w.up.AWS; a != nil {
			values = append(values, a.AccessKeyID, a.SecretAccessKey, a.SessionToken)
		}
		if o := w.up.OAuth2; o != nil {
			values = append(values, o.ClientSecret)
			values = append(values, urlSecrets(o.TokenURL)...)
		}
		if w.up.URL != nil {
			values = append(values, urlSecrets(w.up.URL.String())...)
		}
		for _, kv := range w.up.Env { // NAME=value
			if name, v, ok := strings.Cut(kv, "="); ok && secretName(name) {
				values = append(values, v)
			}
		}
	}
	s := &scrubber{static: newSecretSet(values)}
	if w.hc != nil {
		// The credential transports (worker.go credentialTransports) keep
		// the values that change: tokens and signatures.
		for rt := w.hc.Transport; rt != nil; {
			switch t := rt.(type) {
			case *oauth2Transport:
				s.tokens, rt = &t.src.seen, t.base
			case *sigv4Transport:
				s.sigs, rt = t.signed, t.base
			default:
				rt = nil
			}
		}
	}
	if s.static == nil && s.tokens == nil && s.sigs == nil {
		return nil
	}
	return s
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

// json returns b without any value, b itself when it holds none.
func (s *scrubber) json(b []byte) []byte {
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

// text returns msg (plain text, as in an error message) without any value.
func (s *scrubber) text(msg string) string {
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

// message returns m with clean params (a copy if they changed).
func (s *scrubber) message(m *bus.Message) *bus.Message {
	if s == nil || m == nil {
		return m
	}
	if p := s.json(m.Params); changed(p, m.Params) {
		c := *m
		c.Params = p
		return &c
	}
	return m
}

// err returns err with a clean message; a gateway error quoting the upstream
// (a refused initialize) may repeat what the upstream said.
func (s *scrubber) err(err error) error {
	var e *bus.Error
	if s == nil || !errors.As(err, &e) {
		return err
	}
	if msg := s.text(e.Message); msg != e.Message {
		c := *e
		c.Message = msg
		return &c
	}
	return err
}

func changed(out, in []byte) bool {
	return len(out) != len(in) || len(in) > 0 && &out[0] != &in[0]
}

// scrubbingUpstream is an upstream whose answers are scrubbed.
type scrubbingUpstream struct {
	upstream
	s *scrubber
}

func (u *scrubbingUpstream) Call(ctx context.Context, method string, params json.RawMessage, r *callRelay) (*bus.Message, error) {
	if r != nil && r.secrets == nil {
		// Set before the call starts anything that reads it; a retry of
		// the same call finds it set.
		r.secrets = u.s
	}
	resp, err := u.upstream.Call(ctx, method, params, r)
	if err != nil {
		err = u.s.err(err)
	}
	if resp != nil {
		result, rpcErr := u.s.json(resp.Result), u.s.json(resp.Error)
		if changed(result, resp.Result) || changed(rpcErr, resp.Error) {
			c := *resp
			c.Result, c.Error = result, rpcErr
			resp = &c
		}
	}
	return resp, err
}

func (u *scrubbingUpstream) Notify(ctx context.Context, method string, params json.RawMessage) error {
	return u.s.err(u.upstream.Notify(ctx, method, params))
}

func (u *scrubbingUpstream) Info(ctx context.Context) (json.RawMessage, error) {
	info, err := u.upstream.Info(ctx)
	if err != nil {
		err = u.s.err(err)
	}
	return u.s.json(info), err
}

// scrubbedEvents cleans what an upstream session sends outside calls before
// the link relays it.
type scrubbedEvents struct {
	sessionEvents
	s *scrubber
}

func (e scrubbedEvents) sessionNotification(method string, params json.RawMessage) {
	e.sessionEvents.sessionNotification(method, e.s.json(params))
}

func (e scrubbedEvents) serverRequest(ctx context.Context, m *bus.Message) []byte {
	return e.sessionEvents.serverRequest(ctx, e.s.message(m))
}

// secretSet is a fixed set of values in every form they may take.
type secretSet struct {
	forms   []string // every form, longest first
	json    [][]byte // the forms JSON text can hold (no raw '"', '\' or control byte), longest first
	detect  [][]byte // the json forms that hold no other: enough to tell if any is there
	numeric [][]byte // json forms a JSON number could hold
	first   [256]bool
}

// newSecretSet builds the set of values (those shorter than minSecretLen are
// left out); nil when none is left.
func newSecretSet(values []string) *secretSet {
	seen := map[string]bool{}
	inJSON := map[string]bool{} // forms JSON text can hold
	set := &secretSet{}
	addForm := func(f string, json bool) {
		if !seen[f] {
			seen[f] = true
			set.forms = append(set.forms, f)
		}
		inJSON[f] = inJSON[f] || json
	}
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		addForm(v, jsonSafe(v))
		for _, f := range jsonForms(v) {
			addForm(f, true)
			if strings.Contains(f, `\`) { // JSON text inside a JSON string
				for _, g := range jsonForms(f) {
					addForm(g, true)
				}
			}
		}
	}
	if len(set.forms) == 0 {
		return nil
	}
	slices.SortStableFunc(set.forms, func(a, b string) int { return len(b) - len(a) })
	for _, f := range set.forms {
		if !inJSON[f] {
			continue
		}
		set.json = append(set.json, []byte(f))
		set.first[f[0]] = true
		if strings.Trim(f, "0123456789.eE+-") == "" {
			set.numeric = append(set.numeric, []byte(f))
		}
	}
	for i, f := range set.json {
		redundant := false
		for _, g := range set.json[i+1:] {
			if len(g) < len(f) && bytes.Contains(f, g) {
				redundant = true
				break
			}
		}
		if !redundant {
			set.detect = append(set.detect, f)
		}
	}
	return set
}

// present reports whether b holds any value.
func (set *secretSet) present(b []byte) bool {
	for _, d := range set.detect {
		if bytes.Contains(b, d) {
			return true
		}
	}
	return false
}

// at is the length of the value that starts at b[i], or 0.
func (set *secretSet) at(b []byte, i int) int {
	if !set.first[b[i]] {
		return 0
	}
	for _, f := range set.json {
		if bytes.HasPrefix(b[i:], f) {
			return len(f)
		}
	}
	return 0
}

func (set *secretSet) starts() *[256]bool { return &set.first }

func (set *secretSet) inNumber(tok []byte) bool {
	for _, f := range set.numeric {
		if bytes.Contains(tok, f) {
			return true
		}
	}
	return false
}

func (set *secretSet) text(msg string) string {
	if set == nil {
		return msg
	}
	for _, f := range set.forms {
		if strings.Contains(msg, f) {
			msg = strings.ReplaceAll(msg, f, bus.Redacted)
		}
	}
	return msg
}

// jsonSafe reports whether s can appear as is in JSON text: a raw '"', '\'
// or control byte cannot be inside a string, so it would match structure.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// jsonEscapes says which optional escapes an encoder uses.
type jsonEscapes struct {
	slash    bool // '/' as \/
	html     bool // <, >, & (and U+2028, U+2029) as \u003c...
	nonASCII bool // every rune past 0x7f as \uXXXX (surrogate pairs past 0xffff)
	upper    bool // upper-case hex digits in \u escapes
}

// jsonForms is v as each combination of escapes writes it inside a JSON
// string, without the quotes.
func jsonForms(v string) []string {
	var out []string
	for i := range 16 {
		f := escapeJSON(v, jsonEscapes{slash: i&1 != 0, html: i&2 != 0, nonASCII: i&4 != 0, upper: i&8 != 0})
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func escapeJSON(v string, e jsonEscapes) string {
	var b strings.Builder
	u := func(r rune) {
		h := strconv.FormatInt(int64(r), 16)
		if e.upper {
			h = strings.ToUpper(h)
		}
		b.WriteString(`\u` + strings.Repeat("0", 4-len(h)) + h)
	}
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(v[i]) // not UTF-8: as the bytes came
			i++
			continue
		}
		i += size
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '/' && e.slash:
			b.WriteString(`\/`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			u(r)
		case (r == '<' || r == '>' || r == '&') && e.html:
			u(r)
		case (r == 0x2028 || r == 0x2029) && (e.html || e.nonASCII):
			u(r)
		case r > 0x7f && e.nonASCII:
			if r > 0xffff {
				r1, r2 := utf16Pair(r)
				u(r1)
				u(r2)
			} else {
				u(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// matcher finds values in JSON text for scrubJSON.
type matcher interface {
	// starts marks the bytes a value can start with.
	starts() *[256]bool
	// at is the length of a value that starts at b[i] (inside a string), or 0.
	at(b []byte, i int) int
	// inNumber reports whether a JSON number token holds a value.
	inNumber(tok []byte) bool
}

// scrubJSON replaces what m finds inside the strings of JSON text b by
// bus.Redacted, and a number that holds a value by the string "[redacted]".
// It never looks inside an escape sequence, so the text stays valid JSON.
// b itself is returned when nothing was found.
func scrubJSON(b []byte, m matcher) []byte {
	var out []byte
	done := 0
	replace := func(from, to int, with []byte) {
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(append(out, b[done:from]...), with...)
		done = to
	}
	stop := *m.starts() // in a string: where a value, an escape or the end may be
	stop['"'], stop['\\'] = true, true
	inString := false
	for i := 0; i < len(b); {
		if inString {
			for i < len(b) && !stop[b[i]] {
				i++
			}
			if i == len(b) {
				break
			}
		}
		c := b[i]
		switch {
		case inString:
			if n := m.at(b, i); n > 0 {
				replace(i, i+n, redactedBytes)
				i += n
				continue
			}
			switch {
			case c == '"':
				inString = false
				i++
			case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
				i += 6
			case c == '\\':
				i += 2
			default:
				i++
			}
		case c == '"':
			inString = true
			i++
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(b) && strings.IndexByte("0123456789.eE+-", b[j]) >= 0 {
				j++
			}
			if m.inNumber(b[i:j]) {
				replace(i, j, redactedString)
			}
			i = j
		default:
			i++
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
}

// recentSecrets holds the latest values of a credential that changes (an
// OAuth2 access token, as its Authorization header value).
type recentSecrets struct {
	mu     sync.Mutex
	values []string // oldest first, at most maxRecentTokens
	set    atomic.Pointer[secretSet]
}

// add notes a value the worker sends upstream.
func (r *recentSecrets) add(v string) {
	if r == nil || v == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Contains(r.values, v) {
		return
	}
	r.values = append(r.values, v)
	if len(r.values) > maxRecentTokens {
		r.values = slices.Delete(r.values, 0, 1)
	}
	var all []string
	for _, v := range r.values {
		all = append(all, secretValues(v)...)
	}
	r.set.Store(newSecretSet(all))
}

func (r *recentSecrets) load() *secretSet { return r.set.Load() }

// signatureLog holds the SigV4 signatures (64 lower-case hex digits) of the
// replica's latest maxSignatures requests.
type signatureLog struct {
	mu   sync.RWMutex
	set  map[string]struct{}
	ring []string
	next int
}

// add notes the signature in a SigV4 Authorization header value.
func (l *signatureLog) add(authorization string) {
	_, sig, ok := strings.Cut(authorization, "Signature=")
	if l == nil || !ok || len(sig) != 64 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set == nil {
		l.set, l.ring = make(map[string]struct{}, maxSignatures), make([]string, maxSignatures)
	}
	if _, dup := l.set[sig]; dup {
		return
	}
	if old := l.ring[l.next]; old != "" {
		delete(l.set, old)
	}
	l.ring[l.next], l.set[sig] = sig, struct{}{}
	l.next = (l.next + 1) % maxSignatures
}

func (l *signatureLog) has(b []byte) bool {
	l.mu.RLock()
	_, ok := l.set[string(b)]
	l.mu.RUnlock()
	return ok
}

// present reports whether b holds a signature of the log.
func (l *signatureLog) present(b []byte) bool {
	run := 0
	for i := 0; i <= len(b); i++ {
		if i < len(b) && isLowerHex(b[i]) {
			run++
			continue
		}
		if run == 64 && l.has(b[i-64:i]) {
			return true
		}
		run = 0
	}
	return false
}

// at matches a run of exactly 64 hex digits that is a logged signature.
func (l *signatureLog) at(b []byte, i int) int {
	if i > 0 && isLowerHex(b[i-1]) || len(b)-i < 64 || len(b)-i > 64 && isLowerHex(b[i+64]) {
		return 0
	}
	for _, c := range b[i : i+64] {
		if !isLowerHex(c) {
			return 0
		}
	}
	if l.has(b[i : i+64]) {
		return 64
	}
	return 0
}

func (l *signatureLog) inNumber([]byte) bool { return false }

var hexDigits = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdef") {
		t[c] = true
	}
	return t
}()

func (l *signatureLog) starts() *[256]bool { return &hexDigits }

func (l *signatureLog) text(msg string) string {
	if !l.present([]byte(msg)) {
		return msg
	}
	var b strings.Builder
	run := 0
	for i := 0; i <= len(msg); i++ {
		if i < len(msg) && isLowerHex(msg[i]) {
			run++
			continue
		}
		if run == 64 && l.has([]byte(msg[i-64:i])) {
			b.WriteString(bus.Redacted)
		} else {
			b.WriteString(msg[i-run : i])
		}
		if i < len(msg) {
			b.WriteByte(msg[i])
		}
		run = 0
	}
	return b.String()
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

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
