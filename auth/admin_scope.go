package auth

// Who may make an admin request, and on what: the master key on anything;
// an org_admin (a key whose user_id is an org_admin member of its team's
// organization, records.orgAdmin) on the teams of its organization and
// their keys, and on the organization itself to read it. Every denial is
// ErrForbidden with the reason.

import (
	"context"

	"github.com/mcpbus/mcpbus/bus"
)

// actor is the caller of an admin request as auth re-derives it from its
// own records: the master key, or the administrator of one organization.
type actor struct {
	master bool
	// org is the organization an org_admin administers ("" for the master).
	org string
}

// forbiddenAdmin is the refusal of a caller that is neither.
const forbiddenAdmin = "only the master key (or an org_admin's key, within its organization) may manage keys, teams and organizations"

// actorOf is the caller of a request with envelope env. The envelope's
// Admin comes from the ingress, which sets it for the master key alone (and
// only the ingress may send these requests, bus/natsauth.go); any other
// caller is its key id, whose records say whether it administers an
// organization now, whatever the ingress cached.
func (s *service) actorOf(env bus.Envelope) (actor, *bus.Error) {
	if env.Caller.Admin {
		return actor{master: true}, nil
	}
	if !isToken(env.Caller.KeyID) {
		return actor{}, bus.Errorf(bus.ErrForbidden, "%s", forbiddenAdmin)
	}
	id, _, e := s.check(env.Caller.KeyID) // a blocked, expired or orphaned key: 401 with the reason
	if e != nil {
		return actor{}, e
	}
	if id.OrgAdmin == "" {
		return actor{}, bus.Errorf(bus.ErrForbidden, "%s", forbiddenAdmin)
	}
	return actor{org: id.OrgAdmin}, nil
}

// masterOnly refuses an org_admin what only the master key may do.
func (a actor) masterOnly(what string) *bus.Error {
	if a.master {
		return nil
	}
	return bus.Errorf(bus.ErrForbidden, "only the master key may %s (this key administers organization '%s' only)", what, a.org)
}

// ownsTeam refuses an org_admin a team outside its organization.
func (a actor) ownsTeam(t bus.TeamRecord) *bus.Error {
	if a.master || t.OrganizationID == a.org {
		return nil
	}
	return bus.Errorf(bus.ErrForbidden, "team '%s' is not a team of organization '%s', which this key administers", t.TeamID, a.org)
}

// ownsOrg refuses an org_admin another organization.
func (a actor) ownsOrg(id string) *bus.Error {
	if a.master || id == a.org {
		return nil
	}
	return bus.Errorf(bus.ErrForbidden, "organization '%s' is not the one this key administers ('%s')", bus.Shorten(id, 64), a.org)
}

// ownsKey refuses an org_admin a key that is not of one of its
// organization's teams (read from the store, not the cache: a team just
// moved out must not still count).
func (s *service) ownsKey(ctx context.Context, a actor, k bus.KeyRecord) *bus.Error {
	if a.master {
		return nil
	}
	if k.TeamID == "" {
		return bus.Errorf(bus.ErrForbidden, "key '%s' belongs to no team, so not to organization '%s', which this key administers", keyName(k), a.org)
	}
	t, e := s.getTeam(ctx, k.TeamID)
	if e != nil {
		return e
	}
	if t.OrganizationID != a.org {
		return bus.Errorf(bus.ErrForbidden, "key '%s' belongs to team '%s', which is not a team of organization '%s', which this key administers", keyName(k), t.TeamID, a.org)
	}
	return nil
}

// orgTeams is the set of the ids of org's teams, from the cache.
func (s *service) orgTeams(org string) map[string]bool {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	out := map[string]bool{}
	for id, t := range s.store.teams {
		if t.rec.OrganizationID == org {
			out[id] = true
		}
	}
	return out
}
