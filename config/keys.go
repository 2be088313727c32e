package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// Keys mcpbus does not read are never passed over in silence. A key within
// two edits of one it reads is a typo, and an error with a did-you-mean (an
// `auth_typ:` would otherwise leave the credential unsent); a key LiteLLM
// has and mcpbus does not is named as LiteLLM's in one warning; any other
// key is named as unknown in a warning (a LiteLLM file may hold settings of
// versions these lists do not know).

// The keys mcpbus reads, where it reads them.
var (
	topLevelKeys = []string{"general_settings", "mcp_servers", "model_list", "router_settings", "litellm_settings", "agents", "guardrails"}
	generalKeys  = []string{"master_key", "mcp_tool_prefix_separator", "mcp_internal_ip_ranges",
		"mcp_trusted_proxy_ranges", "enable_mcp_registry", "use_x_forwarded_for", "mcp_xff_num_trusted_hops",
		"mcp_allow_stdio_servers_from_api", "mcp_allowed_origins", "mcp_bus_users", "nats_replicas",
		"nats_creds", "nats_nkey", "nats_tls_ca", "nats_tls_cert", "nats_tls_key",
		"rate_limit_unavailable", "mcp_stateless_protocol", "external_routes",
		"enable_jwt_auth", "litellm_jwtauth", "mcp_oauth", "mcp_audit", "mcp_tool_pinning"}
	serverKeys = append([]string{"server_name", "name"}, serverFieldNames()...)
)

// serverFieldNames are the keys of bus.ServerFields, aliases included.
func serverFieldNames() []string {
	var out []string
	for _, f := range bus.ServerFields {
		out = append(out, f.Names()...)
	}
	return out
}

// The keys of LiteLLM's config that mcpbus does not use (those its docs name;
// the list need not be complete: others are reported as unknown).
var (
	litellmTopLevel = []string{"environment_variables",
		"include", "credential_list", "callback_settings", "files_settings", "finetune_settings",
		"assistant_settings", "vector_store_registry", "mcp_aliases", "search_tools", "prompts"}
	litellmGeneral = []string{"database_url", "store_model_in_db", "database_connection_pool_limit",
		"database_connection_timeout", "allow_requests_on_db_unavailable", "proxy_batch_write_at",
		"alerting", "alerting_threshold", "alert_types", "alert_to_webhook_url", "allowed_routes",
		"admin_only_routes", "public_routes", "key_management_system", "key_management_settings",
		"custom_auth", "custom_key_generate", "disable_spend_logs", "disable_master_key_return",
		"disable_reset_budget", "disable_adding_master_key_hash_to_db",
		"enforce_user_param", "allowed_ips", "max_parallel_requests",
		"global_max_parallel_requests", "infer_model_from_keys", "background_health_checks",
		"health_check_interval", "health_check_details", "ui_access_mode", "service_account_settings",
		"store_prompts_in_spend_logs", "maximum_spend_logs_retention_period", "pass_through_endpoints",
		"user_header_name", "use_redis_transaction_buffer", "use_shared_health_check", "forward_client_headers_to_llm_api",
		"proxy_budget_rescheduler_min_time", "proxy_budget_rescheduler_max_time", "embedding_model",
		"default_team_disabled", "enable_oauth2_auth", "enable_oauth2_proxy_auth", "allow_user_auth",
		"disable_retry_on_max_parallel_request_limit_error", "spend_report_frequency", "otel"}
	litellmServer = []string{"registration_url", "allowed_params", "tool_name_to_display_name", "tool_name_to_description", "mcp_server_name",
		"server_id", "alias_name"}
)

// reportUnknown reports the keys of the mapping at path that were not read:
// known are the keys read there, litellm those LiteLLM has there. Keys are
// reported as written (prefix: what to put before each in a message).
func reportUnknown(p *problems, path, prefix string, unknown, known, litellm []string) {
	var theirs, other []string
	for _, k := range unknown {
		if near := nearest(k, known); near != "" {
			p.errorf(joinPath(path, k), fmt.Sprintf("unknown key; did you mean %q?", near))
			continue
		}
		if slices.Contains(litellm, k) {
			theirs = append(theirs, prefix+k)
		} else {
			other = append(other, prefix+k)
		}
	}
	sort.Strings(other)
	if len(theirs) > 0 {
		p.warn(path, "ignoring LiteLLM settings mcpbus does not use: "+strings.Join(theirs, ", "))
	}
	if len(other) > 0 {
		p.warn(path, "ignoring keys mcpbus does not know (a typo?): "+strings.Join(other, ", "))
	}
}

func joinPath(path, key string) string {
	if key == "" {
		key = `""` // an empty key still names a place
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest is the known key k is most likely a misspelling of: the same but
// for case, or within two edits (one for keys of four letters or fewer); ""
// when none is.
func nearest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if strings.EqualFold(k, c) {
			return c
		}
		limit := 2
		if len(c) <= 4 {
			limit = 1
		}
		if d := editDistance(k, c); d <= limit && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each count one.
func editDistance(a, b string) int {
	if a == b {
		return 0
	}
	ra, rb := []rune(a), []rune(b)
	if d := len(ra) - len(rb); d > 2 || d < -2 {
		return 3 // farther than anything nearest accepts
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// checkDuplicateKeys reports every mapping in the document that gives a key
// twice: YAML would keep the last, silently.
// Aliases are not followed: the node they name is checked where it stands.
func checkDuplicateKeys(p *problems, n *yaml.Node, path string) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkDuplicateKeys(p, c, path)
		}
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Tag == "!!merge" || k.Kind != yaml.ScalarNode {
				continue
			}
			if line, dup := seen[k.Value]; dup {
				p.errorf(joinPath(path, k.Value), fmt.Sprintf("given twice (lines %d and %d); give it once", line, k.Line))
			} else {
				seen[k.Value] = k.Line
			}
			checkDuplicateKeys(p, n.Content[i+1], joinPath(path, k.Value))
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			checkDuplicateKeys(p, c, fmt.Sprintf("%s[%d]", path, i))
		}
	}
}
