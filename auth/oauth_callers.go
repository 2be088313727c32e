package auth

import (
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// checkOAuth answers for a caller whose OAuth access token the ingress
// validated (bus.OAuthCaller): the user's identity in the first team of
// its token that exists here, with that team's and its organization's
// permissions and limits, as for a key of that team without restrictions of
// its own. A user in no team of this gateway is refused, naming the teams
// the token carried: a valid sign-in is not, by itself, access to anything.
func (s *service) checkOAuth(c *bus.OAuthCaller) (bus.Identity, []rateLimit, *bus.Error) {
	if e := c.Validate(); e != nil {
		return bus.Identity{}, nil, e
	}
	if s.masterHash == nil {
		return bus.Identity{KeyID: "anonymous", Permissions: bus.AllowAll()}, nil, nil
	}
	who := c.User
	if s.store == nil {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrServiceUnavailable,
			"OAuth user '%s' cannot be mapped to a team: this gateway keeps no teams (auth runs without JetStream)", who)
	}
	if !s.now().Before(c.Expires) {
		return bus.Identity{}, nil, bus.Errorf(bus.ErrUnauthorized, "unauthorized: the OAuth token of user '%s' has expired", who)
	}
	t, ok := s.store.firstTeam(c.Teams)
	if !ok {
		if len(c.Teams) == 0 {
			return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden,
				"forbidden: OAuth user '%s' is in no team: the token carries no team ids; an admin can add the user to a team in the identity provider or set general_settings.litellm_jwtauth.team_id_default", who)
		}
		return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden,
			"forbidden: OAuth user '%s' is in no team of this gateway (the token names %s); an admin can create a team with one of those team_ids (POST /team/new) or set general_settings.litellm_jwtauth.team_id_default",
			who, quoteList(c.Teams))
	}
	team, org := t.team, t.org
	// 403, not a key's 401: the sign-in is good, and signing in again
	// would not help (a client answers 401 by refreshing its token).
	switch {
	case team.Blocked:
		return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden, "forbidden: OAuth user '%s' is in team '%s', which is blocked", who, teamName(*team))
	case t.orgGone:
		return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden,
			"forbidden: OAuth user '%s' is in team '%s' of organization '%s', which no longer exists", who, teamName(*team), team.OrganizationID)
	case org != nil && org.Blocked:
		return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden,
			"forbidden: OAuth user '%s' is in team '%s' of organization '%s', which is blocked", who, teamName(*team), orgName(*org))
	case c.Org != "" && c.Org != team.OrganizationID:
		return bus.Identity{}, nil, bus.Errorf(bus.ErrForbidden,
			"forbidden: OAuth user '%s' has organization '%s' in the token, but team '%s' belongs to %s", who, c.Org, teamName(*team), orgOrNone(team.OrganizationID))
	}
	var limits []rateLimit
	if team.RPMLimit > 0 {
		limits = append(limits, rateLimit{"team", team.TeamID, teamName(*team), team.RPMLimit})
	}
	var orgID string
	if org != nil {
		orgID = org.OrganizationID
		if org.RPMLimit > 0 {
			limits = append(limits, rateLimit{"org", orgID, orgName(*org), org.RPMLimit})
		}
	}
	alias := c.Email
	if alias == "" {
		alias = c.User
	}
	exp := c.Expires
	return bus.Identity{
		KeyID:       bus.OAuthKeyID(c.Issuer, c.User),
		Alias:       alias,
		Team:        team.TeamID,
		Org:         orgID,
		User:        c.User,
		Permissions: Effective(bus.KeyRecord{}, team, org),
		RateLimited: len(limits) > 0,
		Expires:     &exp,
		ToolSearch:  toolSearch(bus.KeyRecord{}, team),
	}, limits, nil
}

func orgOrNone(id string) string {
	if id == "" {
		return "no organization"
	}
	return "organization '" + id + "'"
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "'" + id + "'"
	}
	return strings.Join(q, ", ")
}

// teamRecords are a team and its organization, as lookup gives them for a
// key.
type teamRecords struct {
	team    *bus.TeamRecord
	org     *bus.OrgRecord
	orgGone bool
}

// firstTeam returns the first of ids that is a team here, with its
// organization.
func (s *store) firstTeam(ids []string) (teamRecords, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		t, ok := s.teams[id]
		if !ok {
			continue
		}
		r := teamRecords{team: &t.rec}
		if oid := t.rec.OrganizationID; oid != "" {
			if o, found := s.orgs[oid]; found {
				r.org = &o.rec
			} else {
				r.orgGone = true
			}
		}
		return r, true
	}
	return teamRecords{}, false
}
