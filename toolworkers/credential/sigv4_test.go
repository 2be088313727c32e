package credential

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/mcpbus/mcpbus/bus"
)

const (
	sigv4TestAKID    = "AKIDEXAMPLE"
	sigv4TestSecret  = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEYsecret"
	sigv4TestToken   = "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKENvalue=="
	sigv4TestRegion  = "eu-west-1"
	sigv4TestService = "lambda"
	sigv4TestServer  = "aws-tools"
)

func sigv4TestConfig(token string) sigv4Config {
	return sigv4Config{
		AccessKeyID:     sigv4TestAKID,
		SecretAccessKey: sigv4TestSecret,
		SessionToken:    token,
		Region:          sigv4TestRegion,
		Service:         sigv4TestService,
	}
}

// sigv4Seen is what the test upstream received.
type sigv4Seen struct {
	header http.Header
	body   []byte
	status int
	reason string
}

// sigv4Upstream verifies every request's signature independently of the code
// under test: it rebuilds the request from the wire (only the headers named in
// SignedHeaders, the received body's own hash), re-signs that copy with the
// same credentials at the request's X-Amz-Date, and compares Authorization.
// Accepted requests get 200 and their body echoed; others 403.
type sigv4Upstream struct {
	creds aws.Credentials

	mu   sync.Mutex
	seen []sigv4Seen
}

func newSigV4Upstream(t *testing.T, token string) (*sigv4Upstream, *httptest.Server) {
	t.Helper()
	u := &sigv4Upstream{creds: aws.Credentials{AccessKeyID: sigv4TestAKID, SecretAccessKey: sigv4TestSecret, SessionToken: token}}
	srv := httptest.NewServer(u) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return u, srv
}

func (u *sigv4Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	status, reason := http.StatusOK, ""
	if err != nil {
		status, reason = http.StatusBadRequest, "reading body: "+err.Error()
	} else if err := sigv4Verify(r, body, u.creds); err != nil {
		status, reason = http.StatusForbidden, err.Error()
	}
	u.mu.Lock()
	u.seen = append(u.seen, sigv4Seen{header: r.Header.Clone(), body: body, status: status, reason: reason})
	u.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, reason, status)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(body)
}

func (u *sigv4Upstream) last(t *testing.T) sigv4Seen {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		t.Fatal("upstream saw no request")
	}
	return u.seen[len(u.seen)-1]
}

var sigv4SignedHeadersRE = regexp.MustCompile(`SignedHeaders=([^,]+)`)

func sigv4Verify(r *http.Request, body []byte, creds aws.Credentials) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errors.New("no Authorization")
	}
	m := sigv4SignedHeadersRE.FindStringSubmatch(auth)
	if m == nil {
		return errors.New("no SignedHeaders")
	}
	signed := strings.Split(m[1], ";")
	ts, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("bad X-Amz-Date: %v", err)
	}
	if d := time.Since(ts); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("X-Amz-Date %s is too far from now", ts)
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != payloadHash {
		return fmt.Errorf("X-Amz-Content-Sha256 %q does not match the body received (%s)", got, payloadHash)
	}
	cp, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return err
	}
	cp.Host = r.Host
	for _, h := range signed {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = r.ContentLength
		default:
			vs := r.Header.Values(h)
			if len(vs) == 0 {
				return fmt.Errorf("signed header %q missing", h)
			}
			cp.Header[http.CanonicalHeaderKey(h)] = slices.Clone(vs)
		}
	}
	cp.Header.Del("Authorization")
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, payloadHash, sigv4TestService, sigv4TestRegion, ts); err != nil {
		return err
	}
	if !hmac.Equal([]byte(cp.Header.Get("Authorization")), []byte(auth)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// sigv4RoundTripFunc is a middleware between the signing transport and the network.
type sigv4RoundTripFunc func(*http.Request) (*http.Response, error)

func (f sigv4RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func sigv4Client(base http.RoundTripper, cfg sigv4Config) *http.Client {
	return &http.Client{Transport: newSigV4Transport(sigv4TestServer, base, cfg)}
}

func sigv4Do(t *testing.T, c *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func sigv4JSONRequest(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", "sess-123")
	req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	return req
}

func TestSigV4SignsJSONPost(t *testing.T) {
	up, srv := newSigV4Upstream(t, "")
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	req := sigv4JSONRequest(t, srv.URL+"/mcp?b=2&a=x y", body)
	before := req.Header.Clone()
	beforeURL, beforeHost := req.URL.String(), req.Host

	status, echoed := sigv4Do(t, sigv4Client(nil, sigv4TestConfig("")), req)
	seen := up.last(t)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, seen.reason)
	}
	if string(echoed) != body || string(seen.body) != body {
		t.Fatalf("body not delivered intact: server got %q, echoed %q", seen.body, echoed)
	}

	auth := seen.header.Get("Authorization")
	shape := regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=` + sigv4TestAKID + `/(\d{8})/` + sigv4TestRegion + `/` + sigv4TestService +
		`/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$`)
	m := shape.FindStringSubmatch(auth)
	if m == nil {
		t.Fatalf("Authorization has the wrong shape: %q", auth)
	}
	if amzDate := seen.header.Get("X-Amz-Date"); !strings.HasPrefix(amzDate, m[1]) {
		t.Errorf("credential date %s does not match X-Amz-Date %s", m[1], amzDate)
	}
	signed := strings.Split(m[2], ";")
	for _, h := range []string{"host", "content-length", "content-type", "accept", "mcp-session-id", "mcp-protocol-version", "x-amz-date", "x-amz-content-sha256"} {
		if !slices.Contains(signed, h) {
			t.Errorf("header %q is not signed (SignedHeaders=%s)", h, m[2])
		}
	}
	sum := sha256.Sum256([]byte(body))
	if got := seen.header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("X-Amz-Content-Sha256 = %q", got)
	}
	if seen.header.Get("X-Amz-Security-Token") != "" {
		t.Error("X-Amz-Security-Token sent without a session token")
	}

	// The caller's request is untouched.
	if !sigv4HeadersEqual(before, req.Header) {
		t.Errorf("caller's headers changed:\nbefore %v\nafter  %v", before, req.Header)
	}
	if req.URL.String() != beforeURL || req.Host != beforeHost {
		t.Errorf("caller's URL/Host changed: %s %q", req.URL, req.Host)
	}
}

func sigv4HeadersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestSigV4SessionToken(t *testing.T) {
	up, srv := newSigV4Upstream(t, sigv4TestToken)
	req := sigv4JSONRequest(t, srv.URL, `{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	req.Header.Set("X-Amz-Security-Token", "stale-token")
	req.Header.Set("Authorization", "Bearer something-else")
	status, _ := sigv4Do(t, sigv4Client(nil, sigv4TestConfig(sigv4TestToken)), req)
	seen := up.last(t)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, seen.reason)
	}
	if got := seen.header.Values("X-Amz-Security-Token"); len(got) != 1 || got[0] != sigv4TestToken {
		t.Errorf("X-Amz-Security-Token = %q", got)
	}
	if !strings.Contains(seen.header.Get("Authorization"), "x-amz-security-token") {
		t.Error("session token is not a signed header")
	}

	// Without a session token a stale header is dropped, and a verifier that
	// expects a token refuses.
	req = sigv4JSONRequest(t, srv.URL, `{}`)
	req.Header.Set("X-Amz-Security-Token", "stale-token")
	status, _ = sigv4Do(t, sigv4Client(nil, sigv4TestConfig("")), req)
	seen = up.last(t)
	if status != http.StatusForbidden {
		t.Errorf("request without the session token: status %d, want 403", status)
	}
	if seen.header.Get("X-Amz-Security-Token") != "" {
		t.Errorf("stale X-Amz-Security-Token was sent: %q", seen.header.Get("X-Amz-Security-Token"))
	}
}

func TestSigV4RejectsTampering(t *testing.T) {
	up, srv := newSigV4Upstream(t, "")
	body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"transfer","arguments":{"amount":10}}}`

	// Sanity: the verifier refuses a wrong secret, so it really checks.
	wrong := sigv4TestConfig("")
	wrong.SecretAccessKey = "not-the-secret"
	if status, _ := sigv4Do(t, sigv4Client(nil, wrong), sigv4JSONRequest(t, srv.URL, body)); status != http.StatusForbidden {
		t.Fatalf("wrong secret: status %d, want 403", status)
	}

	cases := []struct {
		name   string
		tamper func(r *http.Request, body []byte) []byte
		status int
	}{
		{"passthrough", func(r *http.Request, b []byte) []byte { return b }, http.StatusOK},
		{"one body byte changed", func(r *http.Request, b []byte) []byte {
			b = bytes.Clone(b)
			i := bytes.IndexByte(b, '1') // "amount":10 -> "amount":90
			b[i] = '9'
			return b
		}, http.StatusForbidden},
		{"signed header changed", func(r *http.Request, b []byte) []byte {
			r.Header.Set("Mcp-Session-Id", "someone-elses-session")
			return b
		}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mw := sigv4RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				r = r.Clone(r.Context())
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				if err != nil {
					return nil, err
				}
				nb := tc.tamper(r, b)
				if len(nb) != len(b) {
					t.Fatal("tamper must keep the length")
				}
				r.Body = io.NopCloser(bytes.NewReader(nb))
				r.GetBody = nil
				return http.DefaultTransport.RoundTrip(r)
			})
			status, _ := sigv4Do(t, sigv4Client(mw, sigv4TestConfig("")), sigv4JSONRequest(t, srv.URL, body))
			if status != tc.status {
				t.Fatalf("status %d, want %d (%s)", status, tc.status, up.last(t).reason)
			}
		})
	}
}

// sigv4OpaqueReader hides the concrete reader so http.NewRequest sets no GetBody.
type sigv4OpaqueReader struct {
	io.Reader
	closed bool
}

func (r *sigv4OpaqueReader) Close() error { r.closed = true; return nil }

func TestSigV4BodiesDelivered(t *testing.T) {
	up, srv := newSigV4Upstream(t, "")
	big := bytes.Repeat([]byte(`{"k":"0123456789abcdef"}`), 1<<16) // 1.5 MiB

	cases := []struct {
		name       string
		method     string
		body       []byte
		mk         func(b []byte) io.Reader
		contentLen int64 // overrides ContentLength when non-zero
		wantGet    bool  // request built with GetBody
	}{
		{"bytes.Reader", http.MethodPost, []byte(`{"a":1}`), func(b []byte) io.Reader { return bytes.NewReader(b) }, 0, true},
		{"bytes.Buffer", http.MethodPost, []byte(`{"a":2}`), func(b []byte) io.Reader { return bytes.NewBuffer(b) }, 0, true},
		{"strings.Reader large", http.MethodPost, big, func(b []byte) io.Reader { return strings.NewReader(string(b)) }, 0, true},
		{"no GetBody, length unknown (0)", http.MethodPost, []byte(`{"a":3}`), func(b []byte) io.Reader { return &sigv4OpaqueReader{Reader: bytes.NewReader(b)} }, 0, false},
		{"no GetBody, length -1", http.MethodPost, []byte(`{"a":4}`), func(b []byte) io.Reader { return &sigv4OpaqueReader{Reader: bytes.NewReader(b)} }, -1, false},
		{"no GetBody, length known", http.MethodPost, big, func(b []byte) io.Reader { return &sigv4OpaqueReader{Reader: bytes.NewReader(b)} }, int64(len(big)), false},
		{"no GetBody, empty", http.MethodPost, nil, func(b []byte) io.Reader { return &sigv4OpaqueReader{Reader: bytes.NewReader(b)} }, 0, false},
		{"nil body GET", http.MethodGet, nil, func([]byte) io.Reader { return nil }, 0, false},
		{"http.NoBody DELETE", http.MethodDelete, nil, func([]byte) io.Reader { return http.NoBody }, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var replay []byte
			var replayErr error
			mw := sigv4RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.GetBody != nil {
					rc, err := r.GetBody()
					if err == nil {
						replay, replayErr = io.ReadAll(rc)
						rc.Close()
					} else {
						replayErr = err
					}
				}
				return http.DefaultTransport.RoundTrip(r)
			})
			rd := tc.mk(tc.body)
			req, err := http.NewRequest(tc.method, srv.URL+"/mcp", rd)
			if err != nil {
				t.Fatal(err)
			}
			if (req.GetBody != nil) != tc.wantGet {
				t.Fatalf("test setup: GetBody set = %v", req.GetBody != nil)
			}
			if tc.contentLen != 0 {
				req.ContentLength = tc.contentLen
			}
			req.Header.Set("Content-Type", "application/json")
			status, echoed := sigv4Do(t, sigv4Client(mw, sigv4TestConfig("")), req)
			seen := up.last(t)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, seen.reason)
			}
			if !bytes.Equal(seen.body, tc.body) || !bytes.Equal(echoed, tc.body) {
				t.Fatalf("body not delivered intact: got %d bytes, want %d", len(seen.body), len(tc.body))
			}
			if len(tc.body) > 0 && (replayErr != nil || !bytes.Equal(replay, tc.body)) {
				t.Errorf("signed request cannot replay its body via GetBody (err %v, %d bytes)", replayErr, len(replay))
			}
			if o, ok := rd.(*sigv4OpaqueReader); ok && !o.closed {
				t.Error("caller's body was not closed")
			}
		})
	}
}

func TestSigV4Concurrent(t *testing.T) {
	up, srv := newSigV4Upstream(t, sigv4TestToken)
	c := sigv4Client(nil, sigv4TestConfig(sigv4TestToken))
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, g*100+i)
				req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					errs <- err
					return
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(got) != body {
					errs <- fmt.Errorf("status %d, body %q", resp.StatusCode, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	up.mu.Lock()
	n := len(up.seen)
	up.mu.Unlock()
	if n != 16*8 {
		t.Errorf("upstream saw %d requests, want %d", n, 16*8)
	}
}

type sigv4FailingReader struct{}

func (sigv4FailingReader) Read([]byte) (int, error) {
	return 0, errors.New("disk on fire: " + sigv4TestSecret)
}

func TestSigV4SecretNeverLeaks(t *testing.T) {
	// Capture the standard and structured loggers for the whole test.
	var logs bytes.Buffer
	var logMu sync.Mutex
	lw := sigv4LockedWriter{w: &logs, mu: &logMu}
	oldOut, oldFlags := log.Writer(), log.Flags()
	oldSlog := slog.Default()
	log.SetOutput(lw)
	slog.SetDefault(slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
		slog.SetDefault(oldSlog)
	})

	up, srv := newSigV4Upstream(t, sigv4TestToken)
	cfg := sigv4TestConfig(sigv4TestToken)
	var sent []http.Header
	var sentMu sync.Mutex
	recorder := sigv4RoundTripFunc(func(r *http.Request) (*http.Response, error) {
		sentMu.Lock()
		sent = append(sent, r.Header.Clone())
		sentMu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	c := sigv4Client(recorder, cfg)

	var texts []string
	checkErr := func(name string, err error, kind bus.Kind) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		texts = append(texts, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		var be *bus.Error
		if !errors.As(err, &be) {
			t.Errorf("%s: %T is not a *bus.Error: %v", name, err, err)
			return
		}
		texts = append(texts, fmt.Sprintf("%#v", be))
		if be.Kind != kind {
			t.Errorf("%s: kind %s, want %s", name, be.Kind.Code, kind.Code)
		}
		if !strings.Contains(be.Message, sigv4TestServer) {
			t.Errorf("%s: error does not name the server: %q", name, be.Message)
		}
	}

	// A good request, and one the upstream refuses.
	if status, _ := sigv4Do(t, c, sigv4JSONRequest(t, srv.URL, `{"x":1}`)); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, up.last(t).reason)
	}
	wrong := cfg
	wrong.SessionToken = "other-token"
	if status, body := sigv4Do(t, sigv4Client(recorder, wrong), sigv4JSONRequest(t, srv.URL, `{"x":2}`)); status != http.StatusForbidden {
		t.Fatalf("status %d, want 403", status)
	} else {
		texts = append(texts, string(body))
	}

	// A body that fails to read (its error even quotes the secret).
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(sigv4FailingReader{}))
	_, err := c.Do(req)
	checkErr("body read", err, bus.ErrInternal)

	// GetBody that fails.
	req, _ = http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	req.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("nope " + sigv4TestToken) }
	_, err = c.Do(req)
	checkErr("GetBody", err, bus.ErrInternal)

	// Incomplete configuration.
	partial := cfg
	partial.Region = ""
	_, err = sigv4Client(recorder, partial).Do(sigv4JSONRequest(t, srv.URL, `{}`))
	checkErr("incomplete config", err, bus.ErrUpstreamAuth)

	// Direct RoundTrip errors too (no url.Error wrapping).
	_, err = newSigV4Transport(sigv4TestServer, recorder, partial).RoundTrip(sigv4JSONRequest(t, srv.URL, `{}`))
	checkErr("incomplete config (RoundTrip)", err, bus.ErrUpstreamAuth)

	for _, h := range sent {
		for k, vs := range h {
			texts = append(texts, k+": "+strings.Join(vs, ","))
		}
	}
	up.mu.Lock()
	for _, s := range up.seen {
		for k, vs := range s.header {
			texts = append(texts, k+": "+strings.Join(vs, ","))
		}
	}
	up.mu.Unlock()
	logMu.Lock()
	texts = append(texts, logs.String())
	logMu.Unlock()

	for _, s := range texts {
		if strings.Contains(s, sigv4TestSecret) {
			t.Errorf("secret key leaked: %q", s)
		}
		if strings.Contains(s, sigv4TestToken) && !strings.HasPrefix(s, "X-Amz-Security-Token: ") {
			t.Errorf("session token leaked outside X-Amz-Security-Token: %q", s)
		}
	}
	if len(sent) == 0 {
		t.Fatal("recorder saw no request")
	}
}

type sigv4LockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l sigv4LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
