package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// keysBucket and teamsBucket open (creating if needed) the file-backed buckets of
// key and team records. Key records are stored under their token (the key's
// SHA-256), team records under their team_id.
func keysBucket(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) (jetstream.KeyValue, error) {
	return openBucket(ctx, js, bus.BucketKeys, "mcpbus virtual keys (by SHA-256 of the key)", p)
}

func teamsBucket(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) (jetstream.KeyValue, error) {
	return openBucket(ctx, js, bus.BucketTeams, "mcpbus teams (by team_id)", p)
}

func openBucket(ctx context.Context, js jetstream.JetStream, name, desc string, p bus.StatePolicy) (jetstream.KeyValue, error) {
	return bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: desc,
		History:     5,
		Storage:     jetstream.FileStorage,
	}, p)
}

type keyEntry struct {
	rec bus.KeyRecord
	rev uint64
}

type teamEntry struct {
	rec bus.TeamRecord
	rev uint64
}

// store is the in-memory copy of the keys and teams buckets, kept current by KV
// watches (an edit reaches every replica within milliseconds), from which verify
// answers without leaving the process. It also announces revocations: when a
// change makes a usable key unusable (deleted, blocked, its team deleted or
// blocked) and, from a ticker, when a key's expiry passes.
type store struct {
	keysKV, teamsKV jetstream.KeyValue
	nc              *nats.Conn
	now             func() time.Time
	log             *slog.Logger

	mu    sync.RWMutex
	keys  map[string]keyEntry  // by token
	teams map[string]teamEntry // by team_id
	// changed is closed and replaced on every applied change (see waitFor).
	changed chan struct{}
	// expiredSent holds keys whose expiry was announced; nextExpiry is the
	// earliest expiry not yet announced (zero: none), so most ticks cost nothing.
	expiredSent map[string]bool
	nextExpiry  time.Time
}

func newStore(keysKV, teamsKV jetstream.KeyValue, nc *nats.Conn, now func() time.Time, log *slog.Logger) *store {
	return &store{
		keysKV: keysKV, teamsKV: teamsKV, nc: nc, now: now, log: log,
		keys:        map[string]keyEntry{},
		teams:       map[string]teamEntry{},
		changed:     make(chan struct{}),
		expiredSent: map[string]bool{},
	}
}

// watch loads both buckets and follows them until ctx ends. It returns once the
// initial values are in. Changes seen while loading announce nothing.
func (s *store) watch(ctx context.Context) error {
	tw, err := s.teamsKV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketTeams, err)
	}
	kw, err := s.keysKV.WatchAll(ctx)
	if err != nil {
		_ = tw.Stop()
		return fmt.Errorf("watch %s: %w", bus.BucketKeys, err)
	}
	initial := func(w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry, bool)) error {
		for {
			select {
			case u, ok := <-w.Updates():
				if !ok {
					return fmt.Errorf("watch ended while loading")
				}
				if u == nil {
					return nil // initial values done
				}
				apply(u, false)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := initial(tw, s.applyTeam); err != nil {
		_, _ = tw.Stop(), kw.Stop()
		return fmt.Errorf("load %s: %w", bus.BucketTeams, err)
	}
	if err := initial(kw, s.applyKey); err != nil {
		_, _ = tw.Stop(), kw.Stop()
		return fmt.Errorf("load %s: %w", bus.BucketKeys, err)
	}
	follow := func(w jetstream.KeyWatcher, apply func(jetstream.KeyValueEntry, bool)) {
		defer func() { _ = w.Stop() }()
		for u := range w.Updates() {
			if u != nil {
				apply(u, true)
			}
		}
	}
	go follow(tw, s.applyTeam)
	go follow(kw, s.applyKey)
	return nil
}

// usableLocked reports whether rec may authenticate at now (s.mu held).
func (s *store) usableLocked(rec bus.KeyRecord, now time.Time) bool {
	if rec.Blocked || (rec.Expires != nil && !now.Before(*rec.Expires)) {
		return false
	}
	if rec.TeamID == "" {
		return true
	}
	t, ok := s.teams[rec.TeamID]
	return ok && !t.rec.Blocked
}

func (s *store) applyKey(u jetstream.KeyValueEntry, live bool) {
	token := u.Key()
	var rec bus.KeyRecord
	put := u.Operation() == jetstream.KeyValuePut
	if put {
		if err := json.Unmarshal(u.Value(), &rec); err != nil {
			// Fail closed: an unreadable record authenticates nobody.
			s.log.Error("auth: ignoring unreadable key record", "token_prefix", prefix(token), "err", err)
			put = false
		} else if rec.Token != token {
			// Not auth's: anything on the bus can make JetStream write an
			// answer of its own under any key (bus/msgget.go). It makes no
			// key; the key keeps its last good record.
			s.log.Error("auth: ignoring a key record that does not name its key", "token_prefix", prefix(token))
			return
		}
	}
	now := s.now()
	var revoke []string
	s.mu.Lock()
	old, had := s.keys[token]
	wasUsable := had && s.usableLocked(old.rec, now)
	if put {
		s.keys[token] = keyEntry{rec: rec, rev: u.Revision()}
		if rec.Expires == nil || now.Before(*rec.Expires) {
			delete(s.expiredSent, token) // a new expiry will be announced again
		}
		s.noteExpiryLocked(rec.Expires)
		if wasUsable && !s.usableLocked(rec, now) {
			revoke = append(revoke, token)
		}
	} else {
		delete(s.keys, token)
		delete(s.expiredSent, token)
		if had {
			revoke = append(revoke, token)
		}
	}
	s.bumpLocked()
	s.mu.Unlock()
	if live {
		s.revoke(revoke)
	}
}

func (s *store) applyTeam(u jetstream.KeyValueEntry, live bool) {
	id := u.Key()
	var rec bus.TeamRecord
	put := u.Operation() == jetstream.KeyValuePut
	if put {
		if err := json.Unmarshal(u.Value(), &rec); err != nil {
			// Fail closed: the team's keys stop working until it is fixed.
			s.log.Error("auth: ignoring unreadable team record", "team_id", id, "err", err)
			put = false
		} else if rec.TeamID != id {
			s.log.Error("auth: ignoring a team record that does not name its team", "team_id", bus.Shorten(id, 64))
			return
		}
	}
	now := s.now()
	var members []string
	s.mu.Lock()
	for token, e := range s.keys {
		if e.rec.TeamID == id && s.usableLocked(e.rec, now) {
			members = append(members, token)
		}
	}
	if put {
		s.teams[id] = teamEntry{rec: rec, rev: u.Revision()}
	} else {
		delete(s.teams, id)
	}
	var revoke []string
	for _, token := range members {
		if !s.usableLocked(s.keys[token].rec, now) {
			revoke = append(revoke, token)
		}
	}
	s.bumpLocked()
	s.mu.Unlock()
	if live {
		s.revoke(revoke)
	}
}

func (s *store) bumpLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
	// Every ingress drops its cached verify answers (bus.VerifyCacheTTL).
	if err := s.nc.Publish(bus.SubjectAuthChanged, nil); err != nil {
		s.log.Warn("auth: cannot announce a key or team change", "err", err)
	}
}

func (s *store) noteExpiryLocked(t *time.Time) {
	if t != nil && (s.nextExpiry.IsZero() || t.Before(s.nextExpiry)) {
		s.nextExpiry = *t
	}
}

// revoke announces that the keys' in-flight calls must stop.
func (s *store) revoke(tokens []string) {
	for _, t := range tokens {
		if err := s.nc.Publish(bus.SubjectKeyRevoked, []byte(t)); err != nil {
			s.log.Warn("auth: cannot announce a key revocation", "token_prefix", prefix(t), "err", err)
		}
	}
}

// announceExpired publishes, once per key, the revocation of keys whose expiry
// has passed.
func (s *store) announceExpired() {
	now := s.now()
	var out []string
	s.mu.Lock()
	if s.nextExpiry.IsZero() || now.Before(s.nextExpiry) {
		s.mu.Unlock()
		return
	}
	var next time.Time
	for token, e := range s.keys {
		exp := e.rec.Expires
		if exp == nil || s.expiredSent[token] {
			continue
		}
		if !now.Before(*exp) {
			s.expiredSent[token] = true
			out = append(out, token)
		} else if next.IsZero() || exp.Before(next) {
			next = *exp
		}
	}
	s.nextExpiry = next
	s.mu.Unlock()
	s.revoke(out)
}

func (s *store) expireLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.announceExpired()
		}
	}
}

// lookup returns the key stored under token and its team (nil when the key has
// none or its team is gone; teamGone tells which). Records are read-only.
func (s *store) lookup(token string) (key bus.KeyRecord, team *bus.TeamRecord, teamGone, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.keys[token]
	if !ok {
		return bus.KeyRecord{}, nil, false, false
	}
	if e.rec.TeamID != "" {
		t, found := s.teams[e.rec.TeamID]
		if !found {
			return e.rec, nil, true, true
		}
		return e.rec, &t.rec, false, true
	}
	return e.rec, nil, false, true
}

// waitFor waits until cond (called with s.mu read-locked) holds, so an admin
// request answers only once its own write is visible here. It reports false if
// that took longer than d.
func (s *store) waitFor(d time.Duration, cond func() bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		s.mu.RLock()
		ok := cond()
		ch := s.changed
		s.mu.RUnlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// prefix is how messages and logs may name a token: its first 8 hex digits.
func prefix(token string) string {
	if len(token) > 8 {
		return token[:8]
	}
	return token
}
