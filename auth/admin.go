package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// The admin endpoints. The ingress forwards only the requests of the master
// key and of keys that administer an organization (Identity.OrgAdmin); each
// handler gets the caller as auth re-derives it from its own records
// (actor, admin_scope.go) and limits an org_admin to its organization.
// Bodies are LiteLLM's JSON shapes; unknown fields are ignored (LiteLLM
// clients send budgets, models and the like).
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
//   - An organization that still has teams cannot be deleted (409 naming
//     how many): deleting their keys with it would be a surprise, and a
//     team left naming a missing organization authenticates nobody. The
//     check runs against this replica's cache, as key_alias's does.

// adminWait bounds how long a write waits to see itself in the cache.
const adminWait = 2 * time.Second

// adminHandler answers one admin request of who.
type adminHandler func(ctx context.Context, who actor, data []byte) (any, *bus.Error)

func (s *service) admin(h adminHandler) micro.HandlerFunc {
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
		env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
		if err != nil {
			bus.RespondError(req, bus.AsError(err))
			return
		}
		who, e := s.actorOf(env)
		if e != nil {
			bus.RespondError(req, e)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
		defer cancel()
		out, e := h(ctx, who, req.Data())
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
			for _, embedded := range []string{"KeyFields.", "TeamFields.", "OrgFields.", "CommonFields.", "PermFields."} {
				field = strings.ReplaceAll(field, embedded, "")
			}
			return bus.Errorf(bus.ErrBadRequest, "%s: expected %s, got a JSON %s", field, jsonType(te.Type.String()), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return bus.Errorf(bus.ErrBadRequest, "malformed JSON body at offset %d", se.Offset)
		}
		if msg := err.Error(); strings.HasPrefix(msg, "return_full_object:") || strings.HasPrefix(msg, "member:") {
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

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
