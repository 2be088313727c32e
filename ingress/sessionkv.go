package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Sessions in JetStream KV, so any ingress replica serves any session.
//
//   - The bucket (bus.BucketSessions) keeps one revision per session (History
//     1) on the file store, so sessions outlive a restart of the gateway, and
//     expires it ttl after its last write (the bucket's MaxAge). With
//     LimitMarkerTTL the server leaves a marker when it expires a session,
//     which every watcher sees.
//   - Each process keeps a local map of records, fed by a watch of the bucket
//     (new sessions, updates and ends made by any replica) and, for a session
//     the watch has not delivered yet, by a get on a miss. A request costs a
//     map lookup.
//   - A session in use is written again (the same record, compare-and-set on
//     its revision) once its record is older than refresh, so its TTL starts
//     over: at most one write per session every few minutes, never per
//     request.
//   - The process that wrote a session's last revision announces its expiry
//     on bus.SubjectSessionClosed (best effort: if that process is gone,
//     nobody does).

// sessionsMaxBytes bounds the sessions bucket (some 100,000 sessions of
// ordinary size).
const sessionsMaxBytes = 256 << 20

// sessionRefreshDivisor sets refresh = ttl / sessionRefreshDivisor (5
// minutes for the one-hour default).
const sessionRefreshDivisor = 12

// openSessionStore opens (creating if needed) the sessions bucket and starts
// following it.
func openSessionStore(ctx context.Context, js jetstream.JetStream, state bus.StatePolicy, ttl time.Duration, log *slog.Logger, ended func(id string, publish bool), now func() time.Time) (*sessionStore, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket:         bus.BucketSessions,
		Description:    "mcpbus downstream MCP sessions",
		History:        1,
		TTL:            ttl,
		Storage:        jetstream.FileStorage,
		LimitMarkerTTL: time.Minute,
		// Bounded, so no caller fills the store for everyone: a record holds
		// at most 16 KiB of capabilities and 64 subscriptions of 2 KiB URIs
		// (bus.MaxSubscriptions), a virtual key at most 500 sessions.
		MaxValueSize: 256 << 10,
		MaxBytes:     sessionsMaxBytes,
	}
	kv, err := bus.EnsureKV(ctx, js, cfg, state)
	if errors.Is(err, jetstream.ErrLimitMarkerTTLNotSupported) {
		// An older server: sessions still expire, only their expiry is not
		// announced.
		cfg.LimitMarkerTTL = 0
		kv, err = bus.EnsureKV(ctx, js, cfg, state)
	}
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(context.Background(), jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", bus.BucketSessions, err)
	}
	s := &sessionStore{m: map[string]*session{}, ttl: ttl, stop: make(chan struct{}), log: log,
		ended: orNoop(ended), kv: kv, refresh: ttl / sessionRefreshDivisor, watch: w, now: orNow(now)}
	go s.follow(w)
	go s.sweep()
	return s, nil
}

// follow applies the bucket's changes to the local map.
func (s *sessionStore) follow(w jetstream.KeyWatcher) {
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		id := e.Key()
		switch e.Operation() {
		case jetstream.KeyValuePut:
			sess, err := decodeSession(e)
			if err != nil {
				s.log.Error("sessions: ignoring an unreadable record", "session_rev", e.Revision(), "err", err)
				continue
			}
			s.keep(sess)
		case jetstream.KeyValueDelete:
			s.forget(id)
			s.ended(id, false) // the replica that deleted it announced it
		case jetstream.KeyValuePurge:
			// The bucket expired it (a MaxAge marker): the session idled out.
			cur := s.forget(id)
			s.ended(id, cur != nil && cur.mine)
		}
	}
}

// keep stores sess in the local map unless the map holds a newer revision.
func (s *sessionStore) keep(sess *session) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.m[sess.rec.ID]; cur != nil && cur.rev >= sess.rev {
		return cur
	}
	s.m[sess.rec.ID] = sess
	return sess
}

func (s *sessionStore) forget(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.m[id]
	delete(s.m, id)
	return cur
}

// fetch reads a session the local map does not have (yet).
func (s *sessionStore) fetch(ctx context.Context, id string) (*session, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sess, err := decodeSession(e)
	if err != nil {
		return nil, err
	}
	if time.Since(sess.written) > s.ttl {
		return nil, nil
	}
	return s.keep(sess), nil
}

func decodeSession(e jetstream.KeyValueEntry) (*session, error) {
	sess := &session{rev: e.Revision(), written: e.Created()}
	if err := json.Unmarshal(e.Value(), &sess.rec); err != nil {
		return nil, err
	}
	sess.rec.ID = e.Key()
	return sess, nil
}

// A new session's record is written within sessionCreateWait. When the
// bucket cannot take it by then (it has no leader while a NATS node is lost
// and the cluster elects another, which takes nats-server 4-9 s), the
// session is kept on this replica and written in the background every
// sessionSettleEvery for up to sessionSettleFor: a new session works at
// once through an election, and the other replicas learn it when the write
// lands (until then a request for it on another replica gets 404, and the
// client initializes again).
const (
	sessionCreateWait  = 500 * time.Millisecond
	sessionSettleEvery = 250 * time.Millisecond
	sessionSettleFor   = 2 * time.Minute
)

// create writes a new session's record, or keeps the session here and
// writes it in the background (settle).
func (s *sessionStore) create(ctx context.Context, sess *session) error {
	data, err := json.Marshal(sess.rec)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, sessionCreateWait)
	rev, err := s.kv.Create(cctx, sess.rec.ID, data)
	cancel()
	if err == nil {
		sess.rev, sess.written, sess.mine = rev, time.Now(), true
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	sess.written, sess.mine = time.Now(), true // rev 0: not in the bucket yet
	n := s.unsettled.Add(1)
	s.warned.Warn(s.log, "sessions: the sessions bucket did not take a new session in time; it works on this replica and is written when the bucket answers",
		"waiting", n, "err", err)
	go s.settle(sess.rec.ID, data)
	return nil
}

// settle writes a new session's record that create could not write.
func (s *sessionStore) settle(id string, data []byte) {
	defer s.unsettled.Add(-1)
	end := time.Now().Add(sessionSettleFor)
	t := time.NewTicker(sessionSettleEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if s.cached(id) == nil {
			return // ended meanwhile
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rev, err := s.kv.Create(ctx, id, data)
		cancel()
		switch {
		case err == nil:
			s.mu.Lock()
			if cur := s.m[id]; cur != nil && cur.rev <= rev {
				next := cur.clone()
				next.rev, next.written, next.mine = rev, time.Now(), true
				s.m[id] = next
			}
			s.mu.Unlock()
			return
		case errors.Is(err, jetstream.ErrKeyExists):
			return // written meanwhile: an update, or a late earlier try
		case time.Now().After(end):
			s.log.Error("sessions: a new session could not be stored in "+sessionSettleFor.String()+"; only this replica serves it", "err", err)
			return
		}
	}
}

// touch writes sess's record again so its TTL starts over. A concurrent
// change (an update, or another replica's touch) already did that.
func (s *sessionStore) touch(sess *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := sess.clone()
	if err := s.put(ctx, next); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		s.log.Warn("sessions: could not refresh a session's TTL", "err", err)
		sess.refreshing.Store(false)
	}
}

// put writes next over the revision it was cloned from and keeps it locally.
func (s *sessionStore) put(ctx context.Context, next *session) error {
	data, err := json.Marshal(next.rec)
	if err != nil {
		return err
	}
	rev, err := s.kv.Update(ctx, next.rec.ID, data, next.rev)
	if err != nil {
		return err
	}
	next.rev, next.written, next.mine = rev, time.Now(), true
	next.refreshing.Store(false)
	s.keep(next)
	return nil
}

// updateKV applies change with compare-and-set, reading the record again
// when another replica changed it first.
func (s *sessionStore) updateKV(ctx context.Context, id string, change func(*bus.SessionRecord)) error {
	cur := s.cached(id)
	for attempt := 0; attempt < 5; attempt++ {
		if cur == nil {
			var err error
			if cur, err = s.fetch(ctx, id); cur == nil {
				return err // ended (nil) or unreadable
			}
		}
		next := cur.clone()
		change(&next.rec)
		err := s.put(ctx, next)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err
		}
		cur = nil // changed meanwhile: read it again
	}
	return fmt.Errorf("session %s changed too often to update", id[:8])
}
