package bus

// ProtocolVersions are the MCP revisions mcpbus speaks, newest first.
var ProtocolVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

// LatestProtocolVersion is offered when a client asks for a revision we do not know.
const LatestProtocolVersion = "2025-11-25"

// DefaultProtocolVersion is assumed when a request carries no MCP-Protocol-Version
// header and nothing else tells (the spec's rule for Streamable HTTP).
const DefaultProtocolVersion = "2025-03-26"

// SupportedProtocolVersion reports whether v is one of ProtocolVersions.
func SupportedProtocolVersion(v string) bool {
	for _, s := range ProtocolVersions {
		if s == v {
			return true
		}
	}
	return false
}

// MCP method names, so the code that branches on one spells it once.
const (
	MethodInitialize             = "initialize"
	MethodInitialized            = "notifications/initialized"
	MethodPing                   = "ping"
	MethodToolsList              = "tools/list"
	MethodToolsCall              = "tools/call"
	MethodPromptsList            = "prompts/list"
	MethodPromptsGet             = "prompts/get"
	MethodResourcesList          = "resources/list"
	MethodResourcesTemplatesList = "resources/templates/list"
	MethodResourcesRead          = "resources/read"
	MethodResourcesSubscribe     = "resources/subscribe"
	MethodResourcesUnsubscribe   = "resources/unsubscribe"
	MethodLoggingSetLevel        = "logging/setLevel"
	MethodCompletionComplete     = "completion/complete"
	// The stateless era's (MCP 2026-07-28): what initialize told, asked
	// any time; and the stream of notifications that replaced the GET
	// stream and resources/subscribe.
	MethodServerDiscover      = "server/discover"
	MethodSubscriptionsListen = "subscriptions/listen"
)
