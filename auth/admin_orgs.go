package auth

// The organization endpoints (LiteLLM's /organization/*): new, info, list,
// update, delete, member_add, member_delete. Writing an organization is the
// master key's; an org_admin may read its own (admin_scope.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

func (s *service) getOrg(ctx context.Context, id string) (bus.OrgRecord, uint64, *bus.Error) {
	if !bus.ValidToken(id) {
		return bus.OrgRecord{}, 0, bus.Errorf(bus.ErrNotFound, "organization_id '%s' does not exist", bus.Shorten(id, 64))
	}
	e, err := s.store.orgsKV.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bus.OrgRecord{}, 0, bus.Errorf(bus.ErrNotFound, "organization_id '%s' does not exist", id)
	}
	if err != nil {
		return bus.OrgRecord{}, 0, internal(s, "read organization", err)
	}
	var rec bus.OrgRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return bus.OrgRecord{}, 0, internal(s, "read organization", err)
	}
	rec.OrganizationID = id
	return rec, e.Revision(), nil
}

func (s *service) seenOrg(id string, rev uint64) {
	if !s.store.waitFor(adminWait, func() bool { return s.store.orgs[id].rev >= rev }) {
		s.log.Warn("auth: an organization write is not visible in the cache yet", "organization_id", id)
	}
}

// applyOrgFields sets the fields present in f on rec.
func applyOrgFields(rec *bus.OrgRecord, f bus.OrgFields) *bus.Error {
	if f.OrganizationAlias != nil {
		alias := strings.TrimSpace(*f.OrganizationAlias)
		if !bus.ValidAlias(alias) {
			return bus.Errorf(bus.ErrBadRequest, "organization_alias: at most %d characters of text", bus.MaxAliasLen)
		}
		rec.OrganizationAlias = alias
	}
	return applyCommon(f.CommonFields, &rec.RPMLimit, &rec.Metadata, &rec.Blocked, mcpLimits{&rec.MCPServers, &rec.MCPAccessGroups, &rec.MCPToolPermissions, &rec.Models, &rec.LLMLimits, &rec.Agents, &rec.AgentAccessGroups})
}

// view is how answers show an organization: with its limits as LiteLLM's
// budget table, the spend of its current budget period and its teams.
func (s *service) view(ctx context.Context, o bus.OrgRecord) bus.OrgView {
	return bus.OrgView{
		OrgRecord:          o,
		LiteLLMBudgetTable: o.BudgetTable(),
		Spend:              s.orgSpend(ctx, o),
		Teams:              s.teamsWhere(func(t bus.TeamRecord) bool { return t.OrganizationID == o.OrganizationID }),
	}
}

func (s *service) orgNew(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	if e := who.masterOnly("create organizations"); e != nil {
		return nil, e
	}
	var in bus.OrgRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, unenforcedOrgFields); e != nil { // unenforced.go
		return nil, e
	}
	id := in.OrganizationID
	if id == "" {
		id = newUUID()
	} else if !bus.ValidToken(id) {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_id: %q may hold only letters, digits, '-' and '_' (at most %d)", bus.Shorten(id, 64), bus.MaxTokenLen)
	}
	now := s.now().UTC()
	rec := bus.OrgRecord{OrganizationID: id, CreatedAt: now, UpdatedAt: now}
	if e := applyOrgFields(&rec, in.OrgFields); e != nil {
		return nil, e
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, internal(s, "encode organization", err)
	}
	rev, err := s.store.orgsKV.Create(ctx, id, body)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, bus.Errorf(bus.ErrConflict, "organization_id '%s' already exists", id)
	}
	if err != nil {
		return nil, internal(s, "store organization", err)
	}
	s.seenOrg(id, rev)
	return s.view(ctx, rec), nil
}

func (s *service) orgInfo(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in bus.OrgIDRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if in.OrganizationID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_id: required")
	}
	if e := who.ownsOrg(in.OrganizationID); e != nil {
		return nil, e
	}
	rec, _, e := s.getOrg(ctx, in.OrganizationID)
	if e != nil {
		return nil, e
	}
	return s.view(ctx, rec), nil
}

// orgList answers every organization, oldest first; an org_admin's own
// only.
func (s *service) orgList(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	var in struct{}
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	s.store.mu.RLock()
	recs := make([]bus.OrgRecord, 0, len(s.store.orgs))
	for id, o := range s.store.orgs {
		if who.ownsOrg(id) == nil {
			recs = append(recs, o.rec)
		}
	}
	s.store.mu.RUnlock()
	sort.Slice(recs, func(i, j int) bool {
		if !recs[i].CreatedAt.Equal(recs[j].CreatedAt) {
			return recs[i].CreatedAt.Before(recs[j].CreatedAt)
		}
		return recs[i].OrganizationID < recs[j].OrganizationID
	})
	out := make([]bus.OrgView, 0, len(recs))
	for _, o := range recs {
		out = append(out, s.view(ctx, o))
	}
	return out, nil
}

// updateOrg reads organization id, changes it with change and writes it
// back if nobody wrote in between (once more on a conflict); s.adminMu held.
func (s *service) updateOrg(ctx context.Context, id string, change func(*bus.OrgRecord) *bus.Error) (bus.OrgRecord, *bus.Error) {
	for range 2 {
		rec, rev, e := s.getOrg(ctx, id)
		if e != nil {
			return bus.OrgRecord{}, e
		}
		if e := change(&rec); e != nil {
			return bus.OrgRecord{}, e
		}
		rec.UpdatedAt = s.now().UTC()
		body, err := json.Marshal(rec)
		if err != nil {
			return bus.OrgRecord{}, internal(s, "encode organization", err)
		}
		newRev, err := s.store.orgsKV.Update(ctx, id, body, rev)
		if isConflict(err) {
			continue
		}
		if err != nil {
			return bus.OrgRecord{}, internal(s, "store organization", err)
		}
		s.seenOrg(id, newRev)
		return rec, nil
	}
	return bus.OrgRecord{}, conflict("organization '" + id + "'")
}

func (s *service) orgUpdate(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	if e := who.masterOnly("change organizations"); e != nil {
		return nil, e
	}
	var in bus.OrgRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, unenforcedOrgFields); e != nil { // unenforced.go
		return nil, e
	}
	if in.OrganizationID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_id: required")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	rec, e := s.updateOrg(ctx, in.OrganizationID, func(rec *bus.OrgRecord) *bus.Error { return applyOrgFields(rec, in.OrgFields) })
	if e != nil {
		return nil, e
	}
	return s.view(ctx, rec), nil
}

// orgDelete deletes organizations that have no team left, and answers them.
func (s *service) orgDelete(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	if e := who.masterOnly("delete organizations"); e != nil {
		return nil, e
	}
	var in bus.OrgDeleteRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if len(in.OrganizationIDs) == 0 {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_ids: required (a list of organization ids to delete)")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	var recs []bus.OrgRecord
	for _, id := range in.OrganizationIDs {
		if slices.ContainsFunc(recs, func(o bus.OrgRecord) bool { return o.OrganizationID == id }) {
			continue
		}
		rec, _, e := s.getOrg(ctx, id)
		if e != nil {
			return nil, e
		}
		if n := len(s.orgTeams(id)); n > 0 {
			return nil, bus.Errorf(bus.ErrConflict, "organization '%s' still has %d teams; delete them or move them out of it (team/update organization_id) first", id, n)
		}
		recs = append(recs, rec)
	}
	out := make([]bus.OrgView, 0, len(recs))
	for _, rec := range recs {
		out = append(out, bus.OrgView{OrgRecord: rec, LiteLLMBudgetTable: rec.BudgetTable(), Spend: s.orgSpend(ctx, rec), Teams: []bus.TeamRecord{}})
		if err := s.store.orgsKV.Delete(ctx, rec.OrganizationID); err != nil {
			return nil, internal(s, "delete organization '"+rec.OrganizationID+"'", err)
		}
	}
	s.store.waitFor(adminWait, func() bool {
		for _, o := range recs {
			if _, ok := s.store.orgs[o.OrganizationID]; ok {
				return false
			}
		}
		return true
	})
	return out, nil
}

func (s *service) orgMemberAdd(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	if e := who.masterOnly("add organization members"); e != nil {
		return nil, e
	}
	var in bus.OrgMemberAddRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if e := refuseUnenforced(data, unenforcedOrgFields); e != nil { // unenforced.go
		return nil, e
	}
	if in.OrganizationID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_id: required")
	}
	if len(in.Member) == 0 {
		return nil, bus.Errorf(bus.ErrBadRequest, "member: required (a member {\"user_id\": ..., \"role\": \"org_admin\" or \"internal_user\"}, or a list of them)")
	}
	if len(in.Member) > bus.MaxMembersPerAdd {
		return nil, bus.Errorf(bus.ErrBadRequest, "member: %d members; at most %d at a time", len(in.Member), bus.MaxMembersPerAdd)
	}
	for i, m := range in.Member {
		switch {
		case m.UserID == "" && m.UserEmail != "":
			return nil, bus.Errorf(bus.ErrBadRequest, "member[%d].user_id: required: mcpbus has no user table to find a user by user_email", i)
		case !bus.ValidUserID(m.UserID):
			return nil, bus.Errorf(bus.ErrBadRequest, "member[%d].user_id: must be 1-%d printable characters without spaces", i, bus.MaxUserIDLen)
		case m.UserEmail != "" && !bus.ValidUserID(m.UserEmail):
			return nil, bus.Errorf(bus.ErrBadRequest, "member[%d].user_email: must be 1-%d printable characters without spaces", i, bus.MaxUserIDLen)
		case m.Role != bus.OrgRoleAdmin && m.Role != bus.OrgRoleUser:
			return nil, bus.Errorf(bus.ErrBadRequest, "member[%d].role: %q is not a role mcpbus knows in an organization: %s or %s", i, bus.Shorten(m.Role, 64), bus.OrgRoleAdmin, bus.OrgRoleUser)
		}
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	var written []bus.OrgMember
	_, e := s.updateOrg(ctx, in.OrganizationID, func(rec *bus.OrgRecord) *bus.Error {
		written = written[:0]
		now := s.now().UTC()
		for _, m := range in.Member {
			i := slices.IndexFunc(rec.Members, func(x bus.OrgMember) bool { return x.UserID == m.UserID })
			if i < 0 {
				rec.Members = append(rec.Members, bus.OrgMember{UserID: m.UserID, OrganizationID: rec.OrganizationID, CreatedAt: now})
				i = len(rec.Members) - 1
			}
			rec.Members[i].UserRole = m.Role
			if m.UserEmail != "" {
				rec.Members[i].UserEmail = m.UserEmail
			}
			rec.Members[i].UpdatedAt = now
			written = append(written, rec.Members[i])
		}
		if len(rec.Members) > bus.MaxOrgMembers {
			return bus.Errorf(bus.ErrBadRequest, "member: organization '%s' would have %d members; at most %d", rec.OrganizationID, len(rec.Members), bus.MaxOrgMembers)
		}
		return nil
	})
	if e != nil {
		return nil, e
	}
	return bus.OrgMemberAddResponse{OrganizationID: in.OrganizationID, UpdatedUsers: []any{}, UpdatedOrganizationMemberships: written}, nil
}

func (s *service) orgMemberDelete(ctx context.Context, who actor, data []byte) (any, *bus.Error) {
	if e := who.masterOnly("remove organization members"); e != nil {
		return nil, e
	}
	var in bus.OrgMemberDeleteRequest
	if e := decode(data, &in); e != nil {
		return nil, e
	}
	if in.OrganizationID == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "organization_id: required")
	}
	if in.UserID == "" && in.UserEmail == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "user_id or user_email: required (the member to remove)")
	}
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	rec, e := s.updateOrg(ctx, in.OrganizationID, func(rec *bus.OrgRecord) *bus.Error {
		i := slices.IndexFunc(rec.Members, func(m bus.OrgMember) bool {
			return in.UserID != "" && m.UserID == in.UserID || in.UserID == "" && m.UserEmail == in.UserEmail
		})
		if i < 0 {
			who := in.UserID
			if who == "" {
				who = in.UserEmail
			}
			return bus.Errorf(bus.ErrNotFound, "user '%s' is not a member of organization '%s'", bus.Shorten(who, 64), rec.OrganizationID)
		}
		rec.Members = slices.Delete(rec.Members, i, i+1)
		return nil
	})
	if e != nil {
		return nil, e
	}
	return s.view(ctx, rec), nil
}

// orgSpend is what org spent in its current budget period (its
// budget_duration counted from the Unix epoch, or ever), from its spend
// counter; 0 when the counters cannot be read (logged).
func (s *service) orgSpend(ctx context.Context, o bus.OrgRecord) float64 {
	c, ok := s.limiter.(*counterLimiter)
	if !ok || !s.spendReady {
		return 0
	}
	nano, err := c.add(ctx, bus.SpendCounterSubject("org", o.OrganizationID, period(o.BudgetDuration, s.now())), "0")
	if err != nil {
		s.warn.Warn(s.log, "auth: an organization's spend cannot be read: its counter is unavailable", "err", fmt.Sprint(err))
		return 0
	}
	return float64(nano) / bus.NanoDollarsInUSD
}
