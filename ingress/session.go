package ingress

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"
)

// session is one downstream MCP session.
type session struct {
	id      string
	keyID   string   // the identity that created it; no one else may use it
	servers []string // the selection made at initialize, used when a request makes none
	version string   // negotiated protocol version
	used    time.Time
}

// sessionStore keeps sessions in memory and ends idle ones.
type sessionStore struct {
	mu   sync.Mutex
	m    map[string]*session
	idle time.Duration
	stop chan struct{}
}

func newSessionStore(idle time.Duration) *sessionStore {
	s := &sessionStore{m: map[string]*session{}, idle: idle, stop: make(chan struct{})}
	go s.sweep()
	return s
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *sessionStore) add(sess *session) {
	sess.used = time.Now()
	s.mu.Lock()
	s.m[sess.id] = sess
	s.mu.Unlock()
}

// get returns the session if it exists and belongs to keyID.
func (s *sessionStore) get(id, keyID string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.m[id]
	if sess == nil || sess.keyID != keyID {
		return nil
	}
	sess.used = time.Now()
	return sess
}

func (s *sessionStore) remove(id, keyID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess := s.m[id]; sess != nil && sess.keyID == keyID {
		delete(s.m, id)
		return true
	}
	return false
}

func (s *sessionStore) sweep() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			for id, sess := range s.m {
				if now.Sub(sess.used) > s.idle {
					delete(s.m, id)
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *sessionStore) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}
