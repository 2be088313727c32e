package auth

// The key endpoints: /key/generate, info, list, update, delete.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// applyKeyFields sets the fields present in f on rec (s.adminMu held).
func (s *service) applyKeyFields(ctx context.Context, rec *bus.KeyRecord, f bus.KeyFields, now time.Time) *bus.Error {
	if f.KeyAlias != nil {
		alias := strings.TrimSpace(*f.KeyAlias)
		if err := s.checkAlias(alias, rec.Token); err != nil {
			return err
		}
		rec.KeyAlias = alias
	}
	if f.TeamID != nil && *f.TeamID != rec.TeamID {
		if *f.TeamID != "" {
			if _, err := s.getTeam(ctx, *f.TeamID); err != nil {
				return err
			}
		}
		rec.TeamID = *f.TeamID
	}
	if f.UserID != nil {
		if *f.UserID != "" && !bus.ValidUserID(*f.UserID) {
			return bus.Errorf(bus.ErrBadRequest, "user_id: must be 1-%d printable characters without spaces (an email, a UUID, an OAuth subject)", bus.MaxUserIDLen)
		}
		rec.UserID = *f.UserID
	}
	if f.Duration != nil && *f.Duration != "" {
		d, err := parseDuration(*f.Duration)
		if err != nil {
			return err
		}
		exp := now.Add(d).UTC()
		rec.Expires = &exp
	}
	if e := applyModelLimits(f, rec); e != nil { // llm_fields.go
		return e
	}
	return applyCommon(f.CommonFields, &rec.RPMLimit, &rec.Metadata, &rec.Blocked, mcpLimits{&rec.MCPServers, &rec.MCPAccessGroups, &rec.MCPToolPermissions, &rec.Models, &rec.LLMLimits, &rec.Agents, &rec.AgentAccessGroups})
}

// checkAlias fails if another key than token has alias.
func (s *service) checkAlias(alias, token string) *bus.Error {
	if alias == "" {
		return nil
	}
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	for t, e := range s.store.keys {
		if t != token && e.rec.KeyAlias == alias {
			return bus.Errorf(bus.ErrConflict, "key_alias '%s' is already used by another key", alias)
		}
	}
	return nil
}

var durationRE = regexp.MustCompile(`^([0-9]{1,9})\s*(s|m|h|d|w)$`)

// parseDuration reads LiteLLM's durations: a whole number and one unit of s, m,
// h, d (days) or w (weeks), like "30s", "15m", "24h", "30d".
func parseDuration(v string) (time.Duration, *bus.Error) {
	m := durationRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, bus.Errorf(bus.ErrBadRequest, "duration: %q is not a duration like 30s, 15m, 24h or 30d", v)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	if n == 0 {
		return 0, bus.Errorf(bus.ErrBadRequest, "duration: %q must be more than zero", v)
	}
	if n > int64(100*365*24*time.Hour/unit) {
		return 0, bus.Errorf(bus.ErrBadRequest, "duration: %q is more than 100 years", v)
	}
	return time.Duration(n) * unit, nil
}

// isToken reports whether s is a token (a key's SHA-256 in hex) rather than a key.
func isToken(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func tokenOf(key string) string {
	if isToken(key) {
		return key
	}
	return bus.HashKey(key)
}

// mayPutKeyIn refuses an org_admin a key in a team outside its
// organization, or in no team (teamID "").
func (s *service) mayPutKeyIn(ctx context.Context, who actor, teamID string) *bus.Error {
	if who.master {
		return nil
	}
	if teamID == "" {
		return bus.Errorf(bus.ErrForbidden, "team_id: a key an org_admin makes or changes must belong to a team of organization '%s'", who.org)
	}
	t, e := s.getTeam(ctx, teamID)
	if e != nil {
		return e
	}
	return who.ownsTeam(t)
}

func (s *service) keyGenerate(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.KeyGenerateRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, nil); e != nil { // unenforced.go
		return nil, e
	}
	if !who.master {
		var team string
		if in.TeamID != nil {
			team = *in.TeamID
		}
		if e := s.mayPutKeyIn(ctx, who, team); e != nil {
			return nil, e
		}
	}
	key := in.Key
	if key != "" {
		if !strings.HasPrefix(key, "sk-") || len(key) < 20 {
			return nil, bus.Errorf(bus.ErrBadRequest, "key: a chosen key must start with 'sk-' and be at least 20 characters long")
		}
	} else {
		key = newKey()
	}
	now := s.now().UTC()
	rec := bus.KeyRecord{Token: bus.HashKey(key), CreatedAt: now, UpdatedAt: now}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if e := s.applyKeyFields(ctx, &rec, in.KeyFields, now); e != nil {
		return nil, e
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, internal(s, "encode key", err)
	}
	rev, err := s.store.keysKV.Create(ctx, rec.Token, body)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, bus.Errorf(bus.ErrConflict, "key: this key already exists")
	}
	if err != nil {
		return nil, internal(s, "store key", err)
	}
	s.seenKey(rec.Token, rev)
	return bus.KeyGenerateResponse{
		Key: key, Token: rec.Token, KeyAlias: rec.KeyAlias, TeamID: rec.TeamID, UserID: rec.UserID, Expires: rec.Expires,
		MCPServers: rec.MCPServers, MCPAccessGroups: rec.MCPAccessGroups, MCPToolPermissions: rec.MCPToolPermissions, Models: rec.Models,
		Agents: rec.Agents, AgentAccessGroups: rec.AgentAccessGroups, RPMLimit: rec.RPMLimit,
		Blocked: rec.Blocked, Metadata: rec.Metadata, CreatedAt: rec.CreatedAt,
	}, nil
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newKey is "sk-" and 43 base62 characters from crypto/rand (256 bits).
func newKey() string {
	out := make([]byte, 0, 46)
	out = append(out, "sk-"...)
	buf := make([]byte, 64)
	for len(out) < 46 {
		_, _ = rand.Read(buf) // never fails (crypto/rand panics instead)
		for _, b := range buf {
			if b < 248 && len(out) < 46 { // 248 = 4*62: no modulo bias
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}

func (s *service) keyInfo(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.KeyRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if in.Key == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "key: required (the key or its token)")
	}
	rec, _, e := s.getKey(ctx, tokenOf(in.Key))
	if e != nil {
		return nil, e
	}
	if e := s.ownsKey(ctx, who, rec); e != nil {
		return nil, e
	}
	return bus.KeyInfoResponse{Info: rec, Key: rec.Token}, nil
}

func (s *service) keyList(_ context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.KeyListRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	// An org_admin lists the keys of its organization's teams only.
	var teams map[string]bool
	if !who.master {
		teams = s.orgTeams(who.org)
		if in.TeamID != "" && !teams[in.TeamID] {
			return nil, bus.Errorf(bus.ErrForbidden, "team '%s' is not a team of organization '%s', which this key administers", bus.Shorten(in.TeamID, 64), who.org)
		}
	}
	var recs []bus.KeyRecord
	s.store.mu.RLock()
	for _, e := range s.store.keys {
		if teams != nil && !teams[e.rec.TeamID] {
			continue
		}
		if (in.TeamID == "" || e.rec.TeamID == in.TeamID) && (in.KeyAlias == "" || e.rec.KeyAlias == in.KeyAlias) {
			recs = append(recs, e.rec)
		}
	}
	s.store.mu.RUnlock()
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].CreatedAt.Equal(recs[j].CreatedAt) {
			return recs[i].CreatedAt.Before(recs[j].CreatedAt)
		}
		return recs[i].Token < recs[j].Token
	})
	keys := make([]bus.KeyListEntry, 0, len(recs))
	for _, r := range recs {
		e := bus.KeyListEntry{Token: r.Token}
		if in.ReturnFullObject {
			e.View = &bus.KeyView{Key: r.Token, KeyRecord: r}
		}
		keys = append(keys, e)
	}
	return bus.KeyListResponse{Keys: keys, TotalCount: len(keys)}, nil
}

func (s *service) keyUpdate(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.KeyUpdateRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, nil); e != nil { // unenforced.go
		return nil, e
	}
	if in.Key == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "key: required (the key or its token)")
	}
	token := tokenOf(in.Key)
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for range 2 {
		rec, rev, e := s.getKey(ctx, token)
		if e != nil {
			return nil, e
		}
		if e := s.ownsKey(ctx, who, rec); e != nil {
			return nil, e
		}
		if in.TeamID != nil {
			if e := s.mayPutKeyIn(ctx, who, *in.TeamID); e != nil {
				return nil, e
			}
		}
		now := s.now().UTC()
		if e := s.applyKeyFields(ctx, &rec, in.KeyFields, now); e != nil {
			return nil, e
		}
		rec.UpdatedAt = now
		body, err := json.Marshal(rec)
		if err != nil {
			return nil, internal(s, "encode key", err)
		}
		newRev, err := s.store.keysKV.Update(ctx, token, body, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return nil, internal(s, "store key", err)
		}
		s.seenKey(token, newRev)
		return bus.KeyView{Key: token, KeyRecord: rec}, nil
	}
	return nil, conflict("key '" + prefix(token) + "'")
}

func (s *service) keyDelete(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.KeyDeleteRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if len(in.Keys) == 0 && len(in.KeyAliases) == 0 {
		return nil, bus.Errorf(bus.ErrBadRequest, "keys or key_aliases: required (a list of keys, tokens or aliases to delete)")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	var tokens []string
	for _, k := range in.Keys {
		t := tokenOf(k)
		if !slices.Contains(tokens, t) {
			tokens = append(tokens, t)
		}
	}
	for _, alias := range in.KeyAliases {
		t, ok := s.tokenByAlias(alias)
		if !ok {
			return nil, bus.Errorf(bus.ErrNotFound, "key_alias '%s' does not exist", alias)
		}
		if !slices.Contains(tokens, t) {
			tokens = append(tokens, t)
		}
	}
	// Every key must exist, and be the caller's to delete, before any goes.
	for _, t := range tokens {
		rec, _, e := s.getKey(ctx, t)
		if e != nil {
			return nil, e
		}
		if e := s.ownsKey(ctx, who, rec); e != nil {
			return nil, e
		}
	}
	deleted, e := s.deleteKeys(ctx, tokens)
	if e != nil {
		return nil, e
	}
	return bus.KeyDeleteResponse{DeletedKeys: deleted}, nil
}

func (s *service) tokenByAlias(alias string) (string, bool) {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	for t, e := range s.store.keys {
		if alias != "" && e.rec.KeyAlias == alias {
			return t, true
		}
	}
	return "", false
}

// deleteKeys deletes tokens and waits until the cache no longer has them.
func (s *service) deleteKeys(ctx context.Context, tokens []string) ([]string, *bus.Error) {
	deleted := []string{}
	for _, t := range tokens {
		if err := s.store.keysKV.Delete(ctx, t); err != nil {
			s.goneKeys(deleted)
			return nil, internal(s, fmt.Sprintf("delete key '%s' (deleted before it: %d)", prefix(t), len(deleted)), err)
		}
		deleted = append(deleted, t)
	}
	s.goneKeys(deleted)
	return deleted, nil
}

// ---- teams ----
