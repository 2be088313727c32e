package auth

import (
	"bytes"
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
	"github.com/nats-io/nats.go/micro"
)

// The admin endpoints. The ingress forwards only the master key's requests, so
// nothing here checks the caller. Bodies are LiteLLM's JSON shapes; unknown
// fields are ignored (LiteLLM clients send budgets, models and the like).
//
// Writes use KV revisions: an update reads the record, changes it and writes it
// back only if nobody wrote in between; on a conflict it starts over once, and
// then gives up with ErrConflict (409), so concurrent admins never silently
// overwrite each other. Every write is answered only once this replica's cache
// shows it, so a request that follows on the same replica sees it.
//
// Decisions:
//   - Deleting a team deletes its keys (as LiteLLM does). The team goes first, so
//     its keys stop verifying at once even if deleting them fails half way; a key
//     whose team does not exist never verifies, and team.new refuses an id that
//     such keys still name.
//   - key_alias is unique. The check runs against this replica's cache under a
//     lock, so two admins racing on two replicas within milliseconds could still
//     both win; key ids (tokens) are strictly unique (kv.Create).
//   - key.delete answers the tokens of what it deleted, never plaintext keys.
//   - Lookups by "key" accept the plaintext key or its token (a 64-digit
//     lowercase hex string, which no issued key is: keys start with "sk-").

// adminWait bounds how long a write waits to see itself in the cache.
const adminWait = 2 * time.Second

func (s *service) admin(h func(context.Context, []byte) (any, *bus.Error)) micro.HandlerFunc {
	return func(req micro.Request) {
		if req.Reply() == "" {
			// Every admin request asks for its answer; one without a reply
			// subject is JetStream's answer steered here (bus/msgget.go).
			s.log.Warn("auth: ignored an admin message that is no request (no reply subject)", "subject", req.Subject())
			return
		}
		if s.store == nil {
			bus.RespondError(req, bus.Errorf(bus.ErrServiceUnavailable,
				"virtual keys are unavailable: the auth service runs without JetStream"))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
		defer cancel()
		out, e := h(ctx, req.Data())
		if e != nil {
			bus.RespondError(req, e)
			return
		}
		_ = req.RespondJSON(out)
	}
}

// decode reads a JSON body into v; an empty body is {}. Errors name the field,
// never a value.
func decode(data []byte, v any) *bus.Error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			field := te.Field
			for _, embedded := range []string{"keyFields.", "teamFields.", "commonFields.", "permFields."} {
				field = strings.ReplaceAll(field, embedded, "")
			}
			return bus.Errorf(bus.ErrBadRequest, "%s: expected %s, got a JSON %s", field, jsonType(te.Type.String()), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return bus.Errorf(bus.ErrBadRequest, "malformed JSON body at offset %d", se.Offset)
		}
		if msg := err.Error(); strings.HasPrefix(msg, "return_full_object:") {
			return bus.Errorf(bus.ErrBadRequest, "%s", msg)
		}
		return bus.Errorf(bus.ErrBadRequest, "malformed JSON body")
	}
	return nil
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "float"):
		return "a number"
	}
	return goType
}

func internal(s *service, what string, err error) *bus.Error {
	s.log.Error("auth: "+what, "err", err)
	if errors.Is(err, context.DeadlineExceeded) {
		return bus.Errorf(bus.ErrServiceUnavailable, "auth: %s: the key store did not answer in time", what)
	}
	return bus.Errorf(bus.ErrInternal, "auth: %s failed", what)
}

func conflict(what string) *bus.Error {
	return bus.Errorf(bus.ErrConflict, "%s was changed by another request at the same time; retry", what)
}

type keyFields struct {
	commonFields
	KeyAlias *string `json:"key_alias"`
	TeamID   *string `json:"team_id"`
	Duration *string `json:"duration"`
}

// apply sets the fields present in f on rec (s.adminMu held).
func (s *service) applyKeyFields(ctx context.Context, rec *bus.KeyRecord, f keyFields, now time.Time) *bus.Error {
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
	if f.Duration != nil && *f.Duration != "" {
		d, err := parseDuration(*f.Duration)
		if err != nil {
			return err
		}
		exp := now.Add(d).UTC()
		rec.Expires = &exp
	}
	return f.commonFields.apply(&rec.RPMLimit, &rec.Metadata, &rec.Blocked, mcpLimits{&rec.MCPServers, &rec.MCPAccessGroups, &rec.MCPToolPermissions})
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

func (s *service) getKey(ctx context.Context, token string) (bus.KeyRecord, uint64, *bus.Error) {
	e, err := s.store.keysKV.Get(ctx, token)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bus.KeyRecord{}, 0, bus.Errorf(bus.ErrNotFound, "key '%s' does not exist", prefix(token))
	}
	if err != nil {
		return bus.KeyRecord{}, 0, internal(s, "read key", err)
	}
	var rec bus.KeyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return bus.KeyRecord{}, 0, internal(s, "read key", err)
	}
	rec.Token = token
	return rec, e.Revision(), nil
}

func (s *service) getTeam(ctx context.Context, id string) (bus.TeamRecord, *bus.Error) {
	rec, _, err := s.getTeamRev(ctx, id)
	return rec, err
}

func (s *service) getTeamRev(ctx context.Context, id string) (bus.TeamRecord, uint64, *bus.Error) {
	if !bus.ValidToken(id) {
		return bus.TeamRecord{}, 0, bus.Errorf(bus.ErrNotFound, "team_id '%s' does not exist", bus.Shorten(id, 64))
	}
	e, err := s.store.teamsKV.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bus.TeamRecord{}, 0, bus.Errorf(bus.ErrNotFound, "team_id '%s' does not exist", id)
	}
	if err != nil {
		return bus.TeamRecord{}, 0, internal(s, "read team", err)
	}
	var rec bus.TeamRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return bus.TeamRecord{}, 0, internal(s, "read team", err)
	}
	rec.TeamID = id
	return rec, e.Revision(), nil
}

// seen waits until this replica's cache holds token at revision rev or later.
func (s *service) seenKey(token string, rev uint64) {
	if !s.store.waitFor(adminWait, func() bool { return s.store.keys[token].rev >= rev }) {
		s.log.Warn("auth: a key write is not visible in the cache yet", "token_prefix", prefix(token))
	}
}

func (s *service) seenTeam(id string, rev uint64) {
	if !s.store.waitFor(adminWait, func() bool { return s.store.teams[id].rev >= rev }) {
		s.log.Warn("auth: a team write is not visible in the cache yet", "team_id", id)
	}
}

func (s *service) goneKeys(tokens []string) {
	s.store.waitFor(adminWait, func() bool {
		for _, t := range tokens {
			if _, ok := s.store.keys[t]; ok {
				return false
			}
		}
		return true
	})
}

// ---- keys ----

type keyGenerateRequest struct {
	keyFields
	Key string `json:"key"`
}

// keyGenerateResponse is the only answer that carries a plaintext key.
type keyGenerateResponse struct {
	Key                string              `json:"key"`
	Token              string              `json:"token"`
	KeyAlias           string              `json:"key_alias,omitempty"`
	TeamID             string              `json:"team_id,omitempty"`
	Expires            *time.Time          `json:"expires"`
	MCPServers         []string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    []string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions map[string][]string `json:"mcp_tool_permissions,omitempty"`
	RPMLimit           int                 `json:"rpm_limit,omitempty"`
	Blocked            bool                `json:"blocked,omitempty"`
	Metadata           map[string]any      `json:"metadata,omitempty"`
	CreatedAt          time.Time           `json:"created_at"`
}

func (s *service) keyGenerate(ctx context.Context, data []byte) (any, *bus.Error) {
	var in keyGenerateRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data); e != nil { // unenforced.go
		return nil, e
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
	if e := s.applyKeyFields(ctx, &rec, in.keyFields, now); e != nil {
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
	return keyGenerateResponse{
		Key: key, Token: rec.Token, KeyAlias: rec.KeyAlias, TeamID: rec.TeamID, Expires: rec.Expires,
		MCPServers: rec.MCPServers, MCPAccessGroups: rec.MCPAccessGroups, MCPToolPermissions: rec.MCPToolPermissions, RPMLimit: rec.RPMLimit,
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

type keyRequest struct {
	Key string `json:"key"`
}

// keyView is a stored key as admin endpoints show it: the record (which holds
// no secret) and its token again as "key", as LiteLLM answers.
type keyView struct {
	Key string `json:"key"`
	bus.KeyRecord
}

func (s *service) keyInfo(ctx context.Context, data []byte) (any, *bus.Error) {
	var in keyRequest
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
	return map[string]any{"key": rec.Token, "info": rec}, nil
}

type keyListRequest struct {
	TeamID   string `json:"team_id"`
	KeyAlias string `json:"key_alias"`
	// ReturnFullObject (LiteLLM's flag) lists records instead of tokens; true
	// or "true" (a GET query parameter arrives as a string).
	ReturnFullObject flexBool `json:"return_full_object"`
}

type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*b = flexBool(v)
	case string:
		p, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("return_full_object: %q is not true or false", v)
		}
		*b = flexBool(p)
	case nil:
		*b = false
	default:
		return fmt.Errorf("return_full_object: expected true or false")
	}
	return nil
}

func (s *service) keyList(_ context.Context, data []byte) (any, *bus.Error) {
	var in keyListRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	var recs []bus.KeyRecord
	s.store.mu.RLock()
	for _, e := range s.store.keys {
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
	keys := make([]any, 0, len(recs))
	for _, r := range recs {
		if in.ReturnFullObject {
			keys = append(keys, keyView{Key: r.Token, KeyRecord: r})
		} else {
			keys = append(keys, r.Token)
		}
	}
	return map[string]any{"keys": keys, "total_count": len(keys)}, nil
}

type keyUpdateRequest struct {
	keyFields
	Key string `json:"key"`
}

func (s *service) keyUpdate(ctx context.Context, data []byte) (any, *bus.Error) {
	var in keyUpdateRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data); e != nil { // unenforced.go
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
		now := s.now().UTC()
		if e := s.applyKeyFields(ctx, &rec, in.keyFields, now); e != nil {
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
		return keyView{Key: token, KeyRecord: rec}, nil
	}
	return nil, conflict("key '" + prefix(token) + "'")
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

type keyDeleteRequest struct {
	Keys       []string `json:"keys"`
	KeyAliases []string `json:"key_aliases"`
}

func (s *service) keyDelete(ctx context.Context, data []byte) (any, *bus.Error) {
	var in keyDeleteRequest
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
		if _, _, e := s.getKey(ctx, t); e != nil {
			return nil, e
		}
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
	deleted, e := s.deleteKeys(ctx, tokens)
	if e != nil {
		return nil, e
	}
	return map[string]any{"deleted_keys": deleted}, nil
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

type teamFields struct {
	commonFields
	TeamAlias *string `json:"team_alias"`
}

func applyTeamFields(rec *bus.TeamRecord, f teamFields) *bus.Error {
	if f.TeamAlias != nil {
		rec.TeamAlias = strings.TrimSpace(*f.TeamAlias)
	}
	return f.commonFields.apply(&rec.RPMLimit, &rec.Metadata, &rec.Blocked, mcpLimits{&rec.MCPServers, &rec.MCPAccessGroups, &rec.MCPToolPermissions})
}

type teamRequest struct {
	teamFields
	TeamID string `json:"team_id"`
}

func (s *service) teamNew(ctx context.Context, data []byte) (any, *bus.Error) {
	var in teamRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data); e != nil { // unenforced.go
		return nil, e
	}
	id := in.TeamID
	if id == "" {
		id = newUUID()
	} else if !bus.ValidToken(id) {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_id: %q may hold only letters, digits, '-' and '_' (at most %d)", bus.Shorten(id, 64), bus.MaxTokenLen)
	}
	now := s.now().UTC()
	rec := bus.TeamRecord{TeamID: id, CreatedAt: now, UpdatedAt: now}
	if e := applyTeamFields(&rec, in.teamFields); e != nil {
		return nil, e
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if n := len(s.teamKeys(id)); n > 0 {
		return nil, bus.Errorf(bus.ErrBadRequest,
			"team_id '%s': %d keys of a deleted team of that id still exist; delete them first (key.list with this team_id)", id, n)
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, internal(s, "encode team", err)
	}
	rev, err := s.store.teamsKV.Create(ctx, id, body)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, bus.Errorf(bus.ErrConflict, "team_id '%s' already exists", id)
	}
	if err != nil {
		return nil, internal(s, "store team", err)
	}
	s.seenTeam(id, rev)
	return rec, nil
}

// teamKeys lists the tokens of the keys that name team id, in no order.
func (s *service) teamKeys(id string) []string {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	var out []string
	for t, e := range s.store.keys {
		if e.rec.TeamID == id {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type teamIDRequest struct {
	TeamID string `json:"team_id"`
}

func (s *service) teamInfo(ctx context.Context, data []byte) (any, *bus.Error) {
	var in teamIDRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if in.TeamID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_id: required")
	}
	rec, e := s.getTeam(ctx, in.TeamID)
	if e != nil {
		return nil, e
	}
	keys := s.teamKeys(rec.TeamID)
	if keys == nil {
		keys = []string{}
	}
	return map[string]any{"team_id": rec.TeamID, "team_info": rec, "keys": keys}, nil
}

func (s *service) teamList(_ context.Context, data []byte) (any, *bus.Error) {
	var in struct{}
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	s.store.mu.RLock()
	out := make([]bus.TeamRecord, 0, len(s.store.teams))
	for _, t := range s.store.teams {
		out = append(out, t.rec)
	}
	s.store.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].TeamID < out[j].TeamID
	})
	return out, nil
}

func (s *service) teamUpdate(ctx context.Context, data []byte) (any, *bus.Error) {
	var in teamRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data); e != nil { // unenforced.go
		return nil, e
	}
	if in.TeamID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_id: required")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for range 2 {
		rec, rev, e := s.getTeamRev(ctx, in.TeamID)
		if e != nil {
			return nil, e
		}
		if e := applyTeamFields(&rec, in.teamFields); e != nil {
			return nil, e
		}
		rec.UpdatedAt = s.now().UTC()
		body, err := json.Marshal(rec)
		if err != nil {
			return nil, internal(s, "encode team", err)
		}
		newRev, err := s.store.teamsKV.Update(ctx, rec.TeamID, body, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return nil, internal(s, "store team", err)
		}
		s.seenTeam(rec.TeamID, newRev)
		return rec, nil
	}
	return nil, conflict("team '" + in.TeamID + "'")
}

type teamDeleteRequest struct {
	TeamIDs []string `json:"team_ids"`
}

func (s *service) teamDelete(ctx context.Context, data []byte) (any, *bus.Error) {
	var in teamDeleteRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if len(in.TeamIDs) == 0 {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_ids: required (a list of team ids to delete)")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for _, id := range in.TeamIDs {
		if _, e := s.getTeam(ctx, id); e != nil {
			return nil, e
		}
	}
	teams := []string{}
	for _, id := range in.TeamIDs {
		if slices.Contains(teams, id) {
			continue
		}
		// The team first: its keys stop verifying at once.
		if err := s.store.teamsKV.Delete(ctx, id); err != nil {
			return nil, internal(s, "delete team '"+id+"'", err)
		}
		teams = append(teams, id)
	}
	s.store.waitFor(adminWait, func() bool {
		for _, id := range teams {
			if _, ok := s.store.teams[id]; ok {
				return false
			}
		}
		return true
	})
	var tokens []string
	for _, id := range teams {
		tokens = append(tokens, s.teamKeys(id)...)
	}
	deleted, e := s.deleteKeys(ctx, tokens)
	if e != nil {
		return nil, e
	}
	return map[string]any{"deleted_teams": teams, "deleted_keys": deleted}, nil
}
