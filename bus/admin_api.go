package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// The key and team admin API of the auth service (LiteLLM's /key/* and
// /team/* endpoints; the subjects, SubjectKeyGenerate ..., are in
// subjects.go; the organizations' API is in orgs.go). The ingress relays REST bodies to these subjects unchanged;
// auth decodes the requests and encodes the answers with the types below, and
// the CLI (`mcpbus keys`) sends and reads them, so both sides share one
// declaration. The JSON is LiteLLM's: keep it byte for byte (member names and
// order; the answers' members are in the alphabetical order their earlier
// map form had).
//
// Requests: a pointer field is nil when the field was not sent, so an update
// changes only what it names; omitempty only keeps a sender from sending
// nulls. Unknown fields are ignored (LiteLLM clients send budgets, models
// and the like).

// ObjectPermission is LiteLLM's nested form of the MCP permission fields,
// and the only form of the agent ones (agents, agent_access_groups).
type ObjectPermission struct {
	MCPServers         *[]string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    *[]string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions *map[string][]string `json:"mcp_tool_permissions,omitempty"`
	Agents             *[]string            `json:"agents,omitempty"`
	AgentAccessGroups  *[]string            `json:"agent_access_groups,omitempty"`
}

// PermFields are the MCP permission fields of keys and teams, top-level or
// nested under object_permission (the top-level field wins).
type PermFields struct {
	MCPServers         *[]string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    *[]string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions *map[string][]string `json:"mcp_tool_permissions,omitempty"`
	ObjectPermission   *ObjectPermission    `json:"object_permission,omitempty"`
}

// CommonFields are the writable fields keys and teams share.
type CommonFields struct {
	PermFields
	// Models: the model groups (names, access groups, wildcards,
	// all-proxy-models, all-team-models) the key or team may use.
	Models *[]string `json:"models,omitempty"`
	// TPMLimit, MaxBudget (a number, or null to clear) and BudgetDuration:
	// the LLM limits (llm_limits.go).
	TPMLimit       *int            `json:"tpm_limit,omitempty"`
	MaxBudget      json.RawMessage `json:"max_budget,omitempty"`
	BudgetDuration *string         `json:"budget_duration,omitempty"`
	RPMLimit       *int            `json:"rpm_limit,omitempty"`
	Metadata       *map[string]any `json:"metadata,omitempty"`
	Blocked        *bool           `json:"blocked,omitempty"`
}

// KeyFields are the writable fields of a key (generate, update).
type KeyFields struct {
	CommonFields
	KeyAlias *string `json:"key_alias,omitempty"`
	TeamID   *string `json:"team_id,omitempty"`
	// UserID is the key's user (LiteLLM's user_id; "" clears it).
	UserID *string `json:"user_id,omitempty"`
	// Duration is LiteLLM's lifetime: a whole number and one of s, m, h, d, w.
	Duration *string `json:"duration,omitempty"`
	// The per-model LLM limits of a key (llm_limits.go).
	ModelMaxBudget *map[string]ModelBudget `json:"model_max_budget,omitempty"`
	ModelRPMLimit  *map[string]int         `json:"model_rpm_limit,omitempty"`
	ModelTPMLimit  *map[string]int         `json:"model_tpm_limit,omitempty"`
}

// KeyGenerateRequest is the body of SubjectKeyGenerate (POST /key/generate).
// Key, if set, is the key to store (it must start with "sk-"); else auth
// makes one.
type KeyGenerateRequest struct {
	KeyFields
	Key string `json:"key,omitempty"`
}

// KeyGenerateResponse answers SubjectKeyGenerate: the only answer that
// carries a plaintext key.
type KeyGenerateResponse struct {
	Key                string              `json:"key"`
	Token              string              `json:"token"`
	KeyAlias           string              `json:"key_alias,omitempty"`
	TeamID             string              `json:"team_id,omitempty"`
	UserID             string              `json:"user_id,omitempty"`
	Expires            *time.Time          `json:"expires"`
	MCPServers         []string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    []string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions map[string][]string `json:"mcp_tool_permissions,omitempty"`
	Models             []string            `json:"models,omitempty"`
	Agents             []string            `json:"agents,omitempty"`
	AgentAccessGroups  []string            `json:"agent_access_groups,omitempty"`
	RPMLimit           int                 `json:"rpm_limit,omitempty"`
	Blocked            bool                `json:"blocked,omitempty"`
	Metadata           map[string]any      `json:"metadata,omitempty"`
	CreatedAt          time.Time           `json:"created_at"`
}

// KeyRequest is the body of SubjectKeyInfo (GET /key/info?key=): the key or
// its token.
type KeyRequest struct {
	Key string `json:"key"`
}

// KeyInfoResponse answers SubjectKeyInfo: the token and the record.
type KeyInfoResponse struct {
	Info KeyRecord `json:"info"`
	Key  string    `json:"key"`
}

// KeyView is a stored key as admin answers show it: the record (which holds
// no secret) and its token again as "key", as LiteLLM answers. It answers
// SubjectKeyUpdate, and lists keys with return_full_object.
type KeyView struct {
	Key string `json:"key"`
	KeyRecord
}

// KeyListRequest is the body of SubjectKeyList (GET /key/list): filters, and
// whether to list whole records.
type KeyListRequest struct {
	TeamID   string `json:"team_id,omitempty"`
	KeyAlias string `json:"key_alias,omitempty"`
	// ReturnFullObject (LiteLLM's flag) lists records instead of tokens; true
	// or "true" (a GET query parameter arrives as a string).
	ReturnFullObject FlexBool `json:"return_full_object,omitempty"`
}

// FlexBool is a bool that also reads "true" and "false" (and null as false).
type FlexBool bool

// UnmarshalJSON reads true, false, "true", "false" (any strconv.ParseBool
// form) or null. Its errors start with "return_full_object:", the one field
// of this type.
func (b *FlexBool) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*b = FlexBool(v)
	case string:
		p, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("return_full_object: %q is not true or false", v)
		}
		*b = FlexBool(p)
	case nil:
		*b = false
	default:
		return fmt.Errorf("return_full_object: expected true or false")
	}
	return nil
}

// KeyListResponse answers SubjectKeyList, oldest key first.
type KeyListResponse struct {
	Keys       []KeyListEntry `json:"keys"`
	TotalCount int            `json:"total_count"`
}

// KeyListEntry is one key of a KeyListResponse: its token alone (a JSON
// string), or with return_full_object its KeyView (an object).
type KeyListEntry struct {
	Token string
	// View is the whole key; nil when only the token was listed.
	View *KeyView
}

// MarshalJSON writes the view, or the token alone.
func (e KeyListEntry) MarshalJSON() ([]byte, error) {
	if e.View != nil {
		return json.Marshal(e.View)
	}
	return json.Marshal(e.Token)
}

// UnmarshalJSON reads a token (a string) or a KeyView (an object).
func (e *KeyListEntry) UnmarshalJSON(data []byte) error {
	var token string
	if json.Unmarshal(data, &token) == nil {
		*e = KeyListEntry{Token: token}
		return nil
	}
	var v KeyView
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	token = v.Token
	if token == "" {
		token = v.Key
	}
	*e = KeyListEntry{Token: token, View: &v}
	return nil
}

// KeyUpdateRequest is the body of SubjectKeyUpdate: the key (or its token)
// and the fields to change. It is answered with the KeyView.
type KeyUpdateRequest struct {
	KeyFields
	Key string `json:"key"`
}

// KeyDeleteRequest is the body of SubjectKeyDelete: keys (or tokens) and
// aliases, all of which must exist.
type KeyDeleteRequest struct {
	Keys       []string `json:"keys,omitempty"`
	KeyAliases []string `json:"key_aliases,omitempty"`
}

// KeyDeleteResponse answers SubjectKeyDelete with the tokens deleted (never
// the keys).
type KeyDeleteResponse struct {
	DeletedKeys []string `json:"deleted_keys"`
}

// TeamFields are the writable fields of a team (new, update).
type TeamFields struct {
	CommonFields
	TeamAlias *string `json:"team_alias,omitempty"`
	// OrganizationID puts the team in an organization (orgs.go), which must
	// exist; "" takes it out.
	OrganizationID *string `json:"organization_id,omitempty"`
}

// TeamRequest is the body of SubjectTeamNew (TeamID optional: auth makes a
// UUID) and SubjectTeamUpdate (TeamID required). Both answer the TeamRecord.
type TeamRequest struct {
	TeamFields
	TeamID string `json:"team_id,omitempty"`
}

// TeamIDRequest is the body of SubjectTeamInfo (GET /team/info?team_id=).
type TeamIDRequest struct {
	TeamID string `json:"team_id"`
}

// TeamInfoResponse answers SubjectTeamInfo: the team and the tokens of its
// keys. (SubjectTeamList answers a []TeamRecord, oldest first.)
type TeamInfoResponse struct {
	Keys     []string   `json:"keys"`
	TeamID   string     `json:"team_id"`
	TeamInfo TeamRecord `json:"team_info"`
}

// TeamDeleteRequest is the body of SubjectTeamDelete: team ids, all of which
// must exist.
type TeamDeleteRequest struct {
	TeamIDs []string `json:"team_ids"`
}

// TeamDeleteResponse answers SubjectTeamDelete: the teams deleted, then the
// tokens of their keys (deleted with them).
type TeamDeleteResponse struct {
	DeletedKeys  []string `json:"deleted_keys"`
	DeletedTeams []string `json:"deleted_teams"`
}
