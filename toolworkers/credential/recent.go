package credential

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
)

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
