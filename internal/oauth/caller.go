package oauth

import (
	"fmt"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// ClaimFields name the claims an identity is read from, as LiteLLM's
// litellm_jwtauth does (*_jwt_field). A dotted name reaches into nested
// objects ("realm_access.roles"); a claim name holding a dot itself is
// tried whole first.
type ClaimFields struct {
	UserID    string // default "sub"
	UserEmail string // default "email"
	TeamIDs   string // a list of team ids (or one, or a space-separated string)
	TeamID    string // one team id
	OrgID     string
}

// Caller maps a valid token's claims to the caller auth is asked about,
// with the claim fields of the token's issuer. teamDefault, if set, is
// the caller's last team (a user whose token names no team of the gateway
// is in it). Team values that are no team id (group paths such as
// "/eng/backend", display names with spaces) are left out: they cannot
// name a team.
func (v *Validator) Caller(c Claims, teamDefault string) (bus.OAuthCaller, *Error) {
	is := v.issuers[c.Issuer]
	if is == nil {
		return bus.OAuthCaller{}, invalid("the token's issuer %q is not trusted", shorten(c.Issuer))
	}
	f := is.cfg.Claims
	userField := f.UserID
	if userField == "" {
		userField = "sub"
	}
	out := bus.OAuthCaller{Issuer: c.Issuer, Expires: c.Expiry}
	user, ok := claimString(c.All, userField)
	if !ok || !bus.ValidUserID(user) {
		return bus.OAuthCaller{}, invalid("the token's %s claim (the user id) is missing or not 1-%d printable characters without spaces", userField, bus.MaxUserIDLen)
	}
	out.User = user
	emailField := f.UserEmail
	if emailField == "" {
		emailField = "email"
	}
	if email, ok := claimString(c.All, emailField); ok && bus.ValidUserID(email) {
		out.Email = email
	}
	var teams []string
	if f.TeamIDs != "" {
		teams = append(teams, claimStrings(c.All, f.TeamIDs)...)
	}
	if f.TeamID != "" {
		if t, ok := claimString(c.All, f.TeamID); ok {
			teams = append(teams, t)
		}
	}
	if teamDefault != "" {
		teams = append(teams, teamDefault)
	}
	for _, t := range teams {
		if bus.ValidToken(t) && len(out.Teams) < bus.MaxOAuthTeams && !contains(out.Teams, t) {
			out.Teams = append(out.Teams, t)
		}
	}
	if f.OrgID != "" {
		if o, ok := claimString(c.All, f.OrgID); ok {
			if !bus.ValidToken(o) {
				return bus.OAuthCaller{}, invalid("the token's %s claim (the organization) is not an organization id", f.OrgID)
			}
			out.Org = o
		}
	}
	if e := out.Validate(); e != nil {
		return bus.OAuthCaller{}, invalid("%s", strings.TrimPrefix(e.Message, "oauth caller: "))
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// claim finds a claim by name, or by a dotted path into nested objects.
func claim(all map[string]any, name string) (any, bool) {
	if v, ok := all[name]; ok {
		return v, true
	}
	var cur any = all
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimString is a claim that is a string (or a number: some providers
// send numeric user ids).
func claimString(all map[string]any, name string) (string, bool) {
	v, ok := claim(all, name)
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case float64:
		return fmt.Sprintf("%.0f", x), true
	}
	return "", false
}

// claimStrings is a claim holding strings: a list, one string, or a
// space-separated string (as "scope" is).
func claimStrings(all map[string]any, name string) []string {
	v, ok := claim(all, name)
	if !ok {
		return nil
	}
	return stringsOf(v, true)
}

// stringsOf is a claim value's strings: the strings of a list, or one
// string (split at spaces when split).
func stringsOf(v any, split bool) []string {
	switch x := v.(type) {
	case string:
		if !split {
			return []string{x}
		}
		return strings.Fields(x)
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
