package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// Organizations (LiteLLM's): the level above teams. An organization owns
// teams (TeamRecord.OrganizationID), bounds what their keys may use (the
// outer level of auth.Effective), carries limits for all of them (rpm,
// tpm, budget) and has members, some of whom administer it (org_admin).
// Auth stores them in BucketOrgs under their id and answers the admin API
// of the subjects SubjectOrgNew ... (subjects.go) with the types below,
// LiteLLM's JSON shapes (pointer fields: absent when not sent).
const BucketOrgs = "mcpbus_orgs"

// The roles a member may hold in an organization (LiteLLM's names).
const (
	// OrgRoleAdmin administers the organization: a key whose user_id is one
	// and whose team belongs to the organization manages its teams and keys.
	OrgRoleAdmin = "org_admin"
	// OrgRoleUser is a plain member.
	OrgRoleUser = "internal_user"
)

// Bounds of what a client writes into an organization or a key's user_id.
const (
	MaxAliasLen      = 256
	MaxUserIDLen     = 256
	MaxOrgMembers    = 1024
	MaxMembersPerAdd = 256
)

// OrgRecord is one organization as stored in BucketOrgs under its id.
type OrgRecord struct {
	OrganizationID     string              `json:"organization_id"`
	OrganizationAlias  string              `json:"organization_alias,omitempty"`
	MCPServers         []string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    []string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions map[string][]string `json:"mcp_tool_permissions,omitempty"`
	Models             []string            `json:"models,omitempty"`
	Agents             []string            `json:"agents,omitempty"`
	AgentAccessGroups  []string            `json:"agent_access_groups,omitempty"`
	RPMLimit           int                 `json:"rpm_limit,omitempty"`
	LLMLimits
	Members   []OrgMember    `json:"members,omitempty"`
	Blocked   bool           `json:"blocked,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// OrgMember is one membership (LiteLLM's organization membership row).
type OrgMember struct {
	UserID         string    `json:"user_id"`
	UserEmail      string    `json:"user_email,omitempty"`
	UserRole       string    `json:"user_role"`
	OrganizationID string    `json:"organization_id"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// AdminOf reports whether userID is an org_admin member of o.
func (o OrgRecord) AdminOf(userID string) bool {
	if userID == "" {
		return false
	}
	for _, m := range o.Members {
		if m.UserID == userID && m.UserRole == OrgRoleAdmin {
			return true
		}
	}
	return false
}

// ValidUserID reports whether s can be a user_id: 1 to MaxUserIDLen
// printable ASCII characters without spaces (an email, a UUID, an OAuth
// subject).
func ValidUserID(s string) bool {
	if s == "" || len(s) > MaxUserIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// ValidAlias reports whether s can be an alias: at most MaxAliasLen bytes
// of text without control characters.
func ValidAlias(s string) bool {
	return len(s) <= MaxAliasLen && ValidHeaderValue(s)
}

// OrgFields are the writable fields of an organization (new, update): the
// fields keys and teams share (permissions, models, agents, rpm_limit,
// tpm_limit, max_budget, budget_duration, metadata, blocked) and its alias.
type OrgFields struct {
	CommonFields
	OrganizationAlias *string `json:"organization_alias,omitempty"`
}

// OrgRequest is the body of SubjectOrgNew (OrganizationID optional: auth
// makes a UUID) and SubjectOrgUpdate (required). Both answer an OrgView.
type OrgRequest struct {
	OrgFields
	OrganizationID string `json:"organization_id,omitempty"`
}

// OrgIDRequest is the body of SubjectOrgInfo (GET
// /organization/info?organization_id=).
type OrgIDRequest struct {
	OrganizationID string `json:"organization_id"`
}

// OrgView answers SubjectOrgNew, SubjectOrgInfo and SubjectOrgUpdate, and
// is one entry of SubjectOrgList's answer (a []OrgView, oldest first):
// the record, LiteLLM's litellm_budget_table holding its limits again, the
// spend of the current budget period, and its teams.
type OrgView struct {
	OrgRecord
	LiteLLMBudgetTable OrgBudgetTable `json:"litellm_budget_table"`
	Spend              float64        `json:"spend"`
	Teams              []TeamRecord   `json:"teams"`
}

// OrgBudgetTable is LiteLLM's litellm_budget_table of an organization.
type OrgBudgetTable struct {
	MaxBudget      *float64 `json:"max_budget"`
	TPMLimit       *int     `json:"tpm_limit"`
	RPMLimit       *int     `json:"rpm_limit"`
	BudgetDuration *string  `json:"budget_duration"`
}

// BudgetTable is o's limits as LiteLLM's litellm_budget_table (null: none).
func (o OrgRecord) BudgetTable() OrgBudgetTable {
	var t OrgBudgetTable
	t.MaxBudget = o.MaxBudget
	if o.TPMLimit > 0 {
		n := o.TPMLimit
		t.TPMLimit = &n
	}
	if o.RPMLimit > 0 {
		n := o.RPMLimit
		t.RPMLimit = &n
	}
	if o.BudgetDuration != "" {
		d := o.BudgetDuration
		t.BudgetDuration = &d
	}
	return t
}

// OrgDeleteRequest is the body of SubjectOrgDelete: organization ids, all
// of which must exist and have no team. It answers the deleted
// organizations ([]OrgView), as LiteLLM does.
type OrgDeleteRequest struct {
	OrganizationIDs []string `json:"organization_ids"`
}

// OrgMemberRequest is one member of SubjectOrgMemberAdd: a user and its
// role (OrgRoleAdmin or OrgRoleUser).
type OrgMemberRequest struct {
	UserID    string `json:"user_id,omitempty"`
	UserEmail string `json:"user_email,omitempty"`
	Role      string `json:"role"`
}

// OrgMembers is LiteLLM's member field: one member object or a list.
type OrgMembers []OrgMemberRequest

// UnmarshalJSON reads one member object or a list of them. Its errors
// start with "member:", the one field of this type.
func (m *OrgMembers) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	var err error
	switch {
	case bytes.HasPrefix(data, []byte("{")):
		var one OrgMemberRequest
		if err = json.Unmarshal(data, &one); err == nil {
			*m = OrgMembers{one}
		}
	case bytes.HasPrefix(data, []byte("[")):
		var list []OrgMemberRequest
		if err = json.Unmarshal(data, &list); err == nil {
			*m = list
		}
	case string(data) == "null":
		*m = nil
	default:
		return errors.New("member: expected a member object ({\"user_id\": ..., \"role\": ...}) or a list of them")
	}
	if err != nil {
		return errors.New("member: user_id, user_email and role are strings")
	}
	return nil
}

// OrgMemberAddRequest is the body of SubjectOrgMemberAdd (POST
// /organization/member_add). A member already in the organization gets
// the role given.
type OrgMemberAddRequest struct {
	OrganizationID string     `json:"organization_id"`
	Member         OrgMembers `json:"member"`
}

// OrgMemberAddResponse answers SubjectOrgMemberAdd: the memberships
// written. mcpbus has no user table, so updated_users is always empty.
type OrgMemberAddResponse struct {
	OrganizationID                 string      `json:"organization_id"`
	UpdatedUsers                   []any       `json:"updated_users"`
	UpdatedOrganizationMemberships []OrgMember `json:"updated_organization_memberships"`
}

// OrgMemberDeleteRequest is the body of SubjectOrgMemberDelete (DELETE
// /organization/member_delete): the member, by user_id or user_email. It
// answers the organization's OrgView.
type OrgMemberDeleteRequest struct {
	OrganizationID string `json:"organization_id"`
	UserID         string `json:"user_id,omitempty"`
	UserEmail      string `json:"user_email,omitempty"`
}
