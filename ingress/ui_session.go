package ingress

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// The admin UI's sign-in (bus/ui.go). POST /ui/api/session with a key
// verifies it as any request would and makes a session: a random id in an
// HttpOnly, SameSite=Strict cookie (Secure under TLS), and, stored under
// the id's hash, the key's hash and a CSRF token. Later requests may then
// authenticate with the cookie instead of a key header (uiCaller): the
// pages call the same admin API as the CLI, and every request is verified
// by auth again, so a revoked key's session ends at once. A request that
// changes something must also carry the CSRF token in X-CSRF-Token, which
// only the UI's own scripts can read (GET /ui/api/session).

// uiSessions keeps sessions in the shared bucket, or in this process.
type uiSessions struct {
	kv    jetstream.KeyValue // nil: memory
	mu    sync.Mutex
	mem   map[string]bus.UISession
	flows map[string][]byte // sign-ins under way (ui_oauth.go), without a bucket
	now   func() time.Time
}

func (g *Ingress) openUISessions() *uiSessions {
	s := &uiSessions{mem: map[string]bus.UISession{}, flows: map[string][]byte{}, now: time.Now}
	if g.o.JetStream == nil {
		return s
	}
	ctx, cancel := context.WithTimeout(context.Background(), bus.FormingWait)
	defer cancel()
	kv, err := bus.EnsureKV(ctx, g.o.JetStream, jetstream.KeyValueConfig{
		Bucket: bus.BucketUISessions, Description: "mcpbus admin UI sign-in sessions", History: 1,
		TTL: bus.UISessionTTL, Storage: jetstream.FileStorage, MaxValueSize: 4 << 10, MaxBytes: 64 << 20, // some 80,000 sessions
	}, g.state())
	if err != nil {
		g.log.Error("UI sessions bucket unavailable: UI sign-ins are kept in this process only, so other ingress replicas will not know them", "err", err)
		return s
	}
	s.kv = kv
	return s
}

// sessionKey is where a session id's record is kept: its hash, so the
// bucket alone does not hold a usable cookie.
func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *uiSessions) put(ctx context.Context, id string, rec bus.UISession) error {
	if s.kv == nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.mem[sessionKey(id)] = rec
		return nil
	}
	data, _ := json.Marshal(rec)
	_, err := s.kv.Put(ctx, sessionKey(id), data)
	return err
}

// get returns the live session of id.
func (s *uiSessions) get(ctx context.Context, id string) (bus.UISession, bool) {
	if len(id) != 64 {
		return bus.UISession{}, false
	}
	var rec bus.UISession
	if s.kv == nil {
		s.mu.Lock()
		r, ok := s.mem[sessionKey(id)]
		s.mu.Unlock()
		if !ok {
			return bus.UISession{}, false
		}
		rec = r
	} else {
		e, err := s.kv.Get(ctx, sessionKey(id))
		if err != nil || json.Unmarshal(e.Value(), &rec) != nil {
			return bus.UISession{}, false
		}
	}
	if !s.now().Before(rec.Expires) {
		return bus.UISession{}, false
	}
	return rec, true
}

func (s *uiSessions) delete(ctx context.Context, id string) {
	if s.kv == nil {
		s.mu.Lock()
		delete(s.mem, sessionKey(id))
		s.mu.Unlock()
		return
	}
	_ = s.kv.Delete(ctx, sessionKey(id))
}

// uiSessionOf returns the session of r's cookie, if it has a live one.
func (g *Ingress) uiSessionOf(r *http.Request) (id string, rec bus.UISession, ok bool) {
	c, err := r.Cookie(bus.UISessionCookie)
	if err != nil || g.uiSessions == nil {
		return "", bus.UISession{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rec, ok = g.uiSessions.get(ctx, c.Value)
	return c.Value, rec, ok
}

// uiCaller is what a request authenticates with through its UI session
// cookie, when it sends no key: the session's key hash, or the OAuth user
// it signed in as (ui_oauth.go); nothing when it has none. MCP's own
// transports take keys only. A request that may change something must
// carry the session's CSRF token.
func (g *Ingress) uiCaller(r *http.Request) (bus.VerifyRequest, *bus.Error) {
	if _, err := r.Cookie(bus.UISessionCookie); err != nil || g.uiSessions == nil || mcpTransport(r.URL.Path) {
		return bus.VerifyRequest{}, nil
	}
	_, rec, ok := g.uiSessionOf(r)
	if !ok {
		return bus.VerifyRequest{}, bus.Errorf(bus.ErrUnauthorized, "unauthorized: the UI session has ended; sign in again")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(bus.UICSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(rec.CSRF)) != 1 {
			return bus.VerifyRequest{}, bus.Errorf(bus.ErrForbidden, "the UI session's CSRF token is missing or wrong (%s)", bus.UICSRFHeader)
		}
	}
	return bus.VerifyRequest{KeyHash: rec.KeyHash, OAuth: rec.OAuth}, nil
}

// verifySession asks auth who a UI session's caller is now.
func (g *Ingress) verifySession(ctx context.Context, rec bus.UISession) (bus.Identity, *bus.Error) {
	if rec.OAuth != nil {
		return g.askAuth(ctx, bus.VerifyRequest{OAuth: rec.OAuth})
	}
	return g.verifyHash(ctx, rec.KeyHash)
}

// mcpTransport reports whether path is one of MCP's own transports.
func mcpTransport(path string) bool {
	return hasPrefixPath(path, "/mcp") || hasPrefixPath(path, "/sse") || path == "/messages" || strings.HasSuffix(path, "/mcp")
}

// uiSessionAnswer is what GET and POST /ui/api/session answer.
type uiSessionAnswer struct {
	Caller string `json:"caller"`
	Admin  bool   `json:"admin"`
	// OrgAdmin is the organization the key administers, if any.
	OrgAdmin string    `json:"org_admin,omitempty"`
	Team     string    `json:"team_id,omitempty"`
	CSRF     string    `json:"csrf"`
	Expires  time.Time `json:"expires"`
}

// serveUISession signs in (POST {"key": ...}), tells who is signed in
// (GET), or signs out (DELETE, with the CSRF token).
func (g *Ingress) serveUISession(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		g.uiSignIn(w, r)
	case http.MethodGet:
		if id, rec, ok := g.uiSignedIn(w, r); ok {
			g.answerUISession(w, id, rec)
		}
	case http.MethodDelete:
		sid, _, ok := g.uiSessionOf(r)
		if ok {
			if _, e := g.uiCaller(r); e != nil {
				writeRESTError(w, e)
				return
			}
			g.uiSessions.delete(r.Context(), sid)
		}
		http.SetCookie(w, g.uiCookie(r, "", -1))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on /ui/api/session", r.Method))
	}
}

func (g *Ingress) uiSignIn(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Key string `json:"key"`
	}
	body, e := g.readAdminBody(w, r)
	if e != nil {
		writeRESTError(w, e)
		return
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, `sign in with {"key": "<master key or virtual key>"}`))
		return
	}
	// No key signs in only where auth takes none: a gateway without a
	// master key (open mode, loopback only).
	var hash string
	if k := strings.TrimSpace(in.Key); k != "" {
		hash = bus.HashKey(k)
	}
	id, e := g.verifyHash(r.Context(), hash)
	if e != nil && hash == "" {
		e = bus.Errorf(bus.ErrBadRequest, `sign in with {"key": "<master key or virtual key>"}`)
	}
	if e != nil {
		g.log.Info("UI sign-in refused", "request_id", requestID(r), "code", e.Kind.Code)
		writeRESTError(w, e)
		return
	}
	rec := bus.UISession{KeyHash: hash, CSRF: randomToken(), Expires: g.uiSessions.now().Add(bus.UISessionTTL)}
	sid := randomToken()
	if err := g.uiSessions.put(r.Context(), sid, rec); err != nil {
		writeRESTError(w, bus.Errorf(bus.ErrServiceUnavailable, "cannot keep the UI session now; try again shortly"))
		return
	}
	http.SetCookie(w, g.uiCookie(r, sid, int(bus.UISessionTTL/time.Second)))
	g.log.Info("UI sign-in", "request_id", requestID(r), "caller", id.Name())
	g.answerUISession(w, id, rec)
}

func (g *Ingress) answerUISession(w http.ResponseWriter, id bus.Identity, rec bus.UISession) {
	data, _ := json.Marshal(uiSessionAnswer{Caller: id.Name(), Admin: id.Admin, OrgAdmin: id.OrgAdmin, Team: id.Team,
		CSRF: rec.CSRF, Expires: rec.Expires.UTC()})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, data)
}

// uiCookie is the session cookie (maxAge < 0 deletes it). Secure when the
// request came over TLS, or through a trusted proxy that says it did.
func (g *Ingress) uiCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: bus.UISessionCookie, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || g.forwardedHTTPS(r)}
}

// forwardedHTTPS: a trusted proxy says the request came over https.
func (g *Ingress) forwardedHTTPS(r *http.Request) bool {
	return g.xff.enabled && strings.EqualFold(g.forwardedEntry(r, "X-Forwarded-Proto"), "https")
}
