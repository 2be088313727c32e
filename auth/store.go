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

func orgsBucket(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) (jetstream.KeyValue, error) {
	return openBucket(ctx, js, bus.BucketOrgs, "mcpbus organizations (by organization_id)", p)
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

type orgEntry struct {
	rec bus.OrgRecord
	rev uint64
}

// store is the in-memory copy of the keys, teams and organizations buckets,
// kept current by KV watches (an edit reaches every replica within
// milliseconds), from which verify answers without leaving the process. It
// also announces revocations: when a change makes a usable key unusable
// (deleted, blocked, its team or the team's organization deleted or
// blocked) and, from a ticker, when a key's expiry passes.
type store struct {
	keysKV, teamsKV, orgsKV jetstream.KeyValue
	nc                      *nats.Conn
	now                     func() time.Time
	log                     *slog.Logger

	mu    sync.RWMutex
	keys  map[string]keyEntry  // by token
	teams map[string]teamEntry // by team_id
	orgs  map[string]orgEntry  // by organization_id
	// changed is closed and replaced on every applied change (see waitFor).
	changed chan struct{}
	// expiredSent holds keys whose expiry was announced; nextExpiry is the
	// earliest expiry not yet announced (zero: none), so most ticks cost nothing.
	expiredSent map[string]bool
	nextExpiry  time.Time
}

func newStore(keysKV, teamsKV, orgsKV jetstream.KeyValue, nc *nats.Conn, now func() time.Time, log *slog.Logger) *store {
	return &store{
		keysKV: keysKV, teamsKV: teamsKV, orgsKV: orgsKV, nc: nc, now: now, log: log,
		keys:        map[string]keyEntry{},
		teams:       map[string]teamEntry{},
		orgs:        map[string]orgEntry{},
		changed:     make(chan struct{}),
		expiredSent: map[string]bool{},
	}
}

// watch loads the three buckets and follows them until ctx ends. It returns
// once the initial values are in. Changes seen while loading announce nothing.
func (s *store) watch(ctx context.Context) error {
	ow, err := s.orgsKV.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", bus.BucketOrgs, err)
	}
	tw, err := s.teamsKV.WatchAll(ctx)
	if err != nil {
		_ = ow.Stop()
		return fmt.Errorf("watch %s: %w", bus.BucketTeams, err)
	}
	kw, err := s.keysKV.WatchAll(ctx)
	if err != nil {
		_, _ = ow.Stop(), tw.Stop()
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
	stop := func() { _, _, _ = ow.Stop(), tw.Stop(), kw.Stop() }
	if err := initial(ow, s.applyOrg); err != nil {
		stop()
		return fmt.Errorf("load %s: %w", bus.BucketOrgs, err)
	}
	if err := initial(tw, s.applyTeam); err != nil {
		stop()
		return fmt.Errorf("load %s: %w", bus.BucketTeams, err)
	}
	if err := initial(kw, s.applyKey); err != nil {
		stop()
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
	go follow(ow, s.applyOrg)
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
	if !ok || t.rec.Blocked {
		return false
	}
	if t.rec.OrganizationID == "" {
		return true
	}
	o, ok := s.orgs[t.rec.OrganizationID]
	return ok && !o.rec.Blocked
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
	s.applyAndRevoke(func(k bus.KeyRecord) bool { return k.TeamID == id }, func() {
		if put {
			s.teams[id] = teamEntry{rec: rec, rev: u.Revision()}
		} else {
			delete(s.teams, id)
		}
	}, live)
}

func (s *store) applyOrg(u jetstream.KeyValueEntry, live bool) {
	id := u.Key()
	var rec bus.OrgRecord
	put := u.Operation() == jetstream.KeyValuePut
	if put {
		if err := json.Unmarshal(u.Value(), &rec); err != nil {
			// Fail closed: the organization's keys stop working until it is fixed.
			s.log.Error("auth: ignoring unreadable organization record", "organization_id", id, "err", err)
			put = false
		} else if rec.OrganizationID != id {
			s.log.Error("auth: ignoring an organization record that does not name its organization", "organization_id", bus.Shorten(id, 64))
			return
		}
	}
	s.applyAndRevoke(func(k bus.KeyRecord) bool {
		t, ok := s.teams[k.TeamID]
		return ok && t.rec.OrganizationID == id
	}, func() {
		if put {
			s.orgs[id] = orgEntry{rec: rec, rev: u.Revision()}
		} else {
			delete(s.orgs, id)
		}
	}, live)
}

// applyAndRevoke applies change under the lock, then revokes (when live)
// the keys member picks that were usable before it and are not after: a
// team or organization blocked or deleted ends its keys' calls.
func (s *store) applyAndRevoke(member func(bus.KeyRecord) bool, change func(), live bool) {
	now := s.now()
	var members []string
	s.mu.Lock()
	for token, e := range s.keys {
		if member(e.rec) && s.usableLocked(e.rec, now) {
			members = append(members, token)
		}
	}
	change()
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

// records is a key and what stands above it. Records are read-only.
type records struct {
	key bus.KeyRecord
	// team is the key's team: nil when it has none or the team is gone
	// (teamGone).
	team     *bus.TeamRecord
	teamGone bool
	// org is the team's organization: nil when it has none or the
	// organization is gone (orgGone).
	org     *bus.OrgRecord
	orgGone bool
}

// orgAdmin is the organization r's key administers, if any: its user_id is
// an org_admin member of the organization its team belongs to. Both must
// hold, so an org_admin cannot mint a key carrying another organization's
// admin's user_id and become that organization's admin (the key's team
// would have to be that organization's).
func (r records) orgAdmin() string {
	if r.team == nil || r.org == nil || !r.org.AdminOf(r.key.UserID) {
		return ""
	}
	return r.org.OrganizationID
}

// lookup returns the key stored under token, its team and the team's
// organization.
func (s *store) lookup(token string) (records, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.keys[token]
	if !ok {
		return records{}, false
	}
	r := records{key: e.rec}
	if e.rec.TeamID == "" {
		return r, true
	}
	t, found := s.teams[e.rec.TeamID]
	if !found {
		r.teamGone = true
		return r, true
	}
	r.team = &t.rec
	if id := t.rec.OrganizationID; id != "" {
		if o, found := s.orgs[id]; found {
			r.org = &o.rec
		} else {
			r.orgGone = true
		}
	}
	return r, true
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
