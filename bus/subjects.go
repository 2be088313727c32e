package bus

// Subjects are versioned and defined here only. A server name is one subject token
// (config restricts names to [A-Za-z0-9_-]).
const (
	Root = "mcpbus.v1"

	// SubjectAuthVerify answers key -> identity (auth service).
	SubjectAuthVerify = Root + ".auth.verify"
	// SubjectRegistryGet and SubjectRegistryList answer server lookups (registry service).
	SubjectRegistryGet  = Root + ".registry.get"
	SubjectRegistryList = Root + ".registry.list"
	// SubjectRouterRPC takes every downstream JSON-RPC message (router service).
	SubjectRouterRPC = Root + ".router.rpc"
)

// Service names as registered with the micro framework ($SRV.INFO, $SRV.PING ...).
const (
	ServiceAuth     = "mcpbus-auth"
	ServiceRegistry = "mcpbus-registry"
	ServiceRouter   = "mcpbus-router"
	ServiceWorker   = "mcpbus-worker"
)

// ToolGroup is the subject prefix of one server's tool workers.
func ToolGroup(server string) string { return Root + ".tool." + server }

// ToolRPC carries JSON-RPC requests for one upstream server to its workers.
func ToolRPC(server string) string { return ToolGroup(server) + ".rpc" }

// ToolInfo answers the upstream's initialize result (capabilities, serverInfo).
func ToolInfo(server string) string { return ToolGroup(server) + ".info" }

// ToolQueue is the queue group shared by all replicas of one server's worker, so
// replicas split the load and a slow upstream only backs up its own subject.
func ToolQueue(server string) string { return "mcpbus.tool." + server }
