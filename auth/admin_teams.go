package auth

// The team endpoints: /team/new, info, list, update, delete.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

func (s *service) applyTeamFields(ctx context.Context, rec *bus.TeamRecord, f bus.TeamFields) *bus.Error {
	if f.TeamAlias != nil {
		rec.TeamAlias = strings.TrimSpace(*f.TeamAlias)
	}
	if f.OrganizationID != nil && *f.OrganizationID != rec.OrganizationID {
		if id := *f.OrganizationID; id != "" {
			if !bus.ValidToken(id) {
				return bus.Errorf(bus.ErrBadRequest, "organization_id: %q is not an organization id (letters, digits, '-' and '_', at most %d)", bus.Shorten(id, 64), bus.MaxTokenLen)
			}
			if _, _, e := s.getOrg(ctx, id); e != nil {
				if e.Kind == bus.ErrNotFound {
					return bus.Errorf(bus.ErrBadRequest, "organization_id: organization '%s' does not exist (create it with /organization/new)", id)
				}
				return e
			}
		}
		rec.OrganizationID = *f.OrganizationID
	}
	return applyCommon(f.CommonFields, &rec.RPMLimit, &rec.Metadata, &rec.Blocked, mcpLimits{&rec.MCPServers, &rec.MCPAccessGroups, &rec.MCPToolPermissions, &rec.Models, &rec.LLMLimits, &rec.Agents, &rec.AgentAccessGroups})
}

func (s *service) teamNew(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.TeamRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, nil); e != nil { // unenforced.go
		return nil, e
	}
	if !who.master {
		// An org_admin's teams are its organization's.
		switch {
		case in.OrganizationID == nil || *in.OrganizationID == "":
			in.OrganizationID = &who.org
		case *in.OrganizationID != who.org:
			return nil, bus.Errorf(bus.ErrForbidden, "organization_id: this key administers organization '%s' and may create teams only in it, not in '%s'",
				who.org, bus.Shorten(*in.OrganizationID, 64))
		}
	}
	id := in.TeamID
	if id == "" {
		id = newUUID()
	} else if !bus.ValidToken(id) {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_id: %q may hold only letters, digits, '-' and '_' (at most %d)", bus.Shorten(id, 64), bus.MaxTokenLen)
	}
	now := s.now().UTC()
	rec := bus.TeamRecord{TeamID: id, CreatedAt: now, UpdatedAt: now}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	if e := s.applyTeamFields(ctx, &rec, in.TeamFields); e != nil {
		return nil, e
	}
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

func (s *service) teamInfo(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.TeamIDRequest
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
	if e := who.ownsTeam(rec); e != nil {
		return nil, e
	}
	keys := s.teamKeys(rec.TeamID)
	if keys == nil {
		keys = []string{}
	}
	return bus.TeamInfoResponse{Keys: keys, TeamID: rec.TeamID, TeamInfo: rec}, nil
}

func (s *service) teamList(_ context.Context, who actor, data []byte) (any, *bus.Error) {
	var in struct{}
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	// An org_admin lists its organization's teams only.
	return s.teamsWhere(func(t bus.TeamRecord) bool { return who.ownsTeam(t) == nil }), nil
}

// teamsWhere lists the teams keep takes, oldest first, from the cache.
func (s *service) teamsWhere(keep func(bus.TeamRecord) bool) []bus.TeamRecord {
	s.store.mu.RLock()
	out := make([]bus.TeamRecord, 0, len(s.store.teams))
	for _, t := range s.store.teams {
		if keep(t.rec) {
			out = append(out, t.rec)
		}
	}
	s.store.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].TeamID < out[j].TeamID
	})
	return out
}

func (s *service) teamUpdate(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.TeamRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, nil); e != nil { // unenforced.go
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
		if e := who.ownsTeam(rec); e != nil {
			return nil, e
		}
		if !who.master && in.OrganizationID != nil && *in.OrganizationID != rec.OrganizationID {
			return nil, bus.Errorf(bus.ErrForbidden, "organization_id: only the master key may move a team to another organization")
		}
		if e := s.applyTeamFields(ctx, &rec, in.TeamFields); e != nil {
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

func (s *service) teamDelete(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.TeamDeleteRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if len(in.TeamIDs) == 0 {
		return nil, bus.Errorf(bus.ErrBadRequest, "team_ids: required (a list of team ids to delete)")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for _, id := range in.TeamIDs {
		rec, e := s.getTeam(ctx, id)
		if e != nil {
			return nil, e
		}
		if e := who.ownsTeam(rec); e != nil {
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
	return bus.TeamDeleteResponse{DeletedKeys: deleted, DeletedTeams: teams}, nil
}
