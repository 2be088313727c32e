package bus

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
)

// The whole subject space of the bus. Subjects are versioned and defined here
// only: every constant, wildcard and builder, and the parsers that read a
// subject back. natsauth.go grants each bus user its subjects from these
// names, so a subject and its permission cannot drift apart. A server name is
// one subject token (config restricts names to [A-Za-z0-9_-]).
//
// At the end: the subjects of NATS's own APIs that the bus uses directly
// (KV, JetStream, micro), spelled once for the code that reads and the
// permissions that allow it.

// Root prefixes every mcpbus subject.
const Root = "mcpbus.v1"

// Auth service (auth/): verify, key and team admin, announcements.
const (
	// SubjectAuthVerify answers key -> identity (auth service).
	SubjectAuthVerify = Root + ".auth.verify"

	// Admin subjects of the auth service (the master key, and an org_admin
	// within its organization: the ingress lets only those ask, and auth
	// scopes what an org_admin may do from its own records). Request and
	// reply bodies are the LiteLLM-compatible JSON shapes of the REST
	// endpoint of the same name.
	SubjectKeyGenerate = Root + ".auth.key.generate"
	SubjectKeyInfo     = Root + ".auth.key.info"
	SubjectKeyList     = Root + ".auth.key.list"
	SubjectKeyUpdate   = Root + ".auth.key.update"
	SubjectKeyDelete   = Root + ".auth.key.delete"
	SubjectTeamNew     = Root + ".auth.team.new"
	SubjectTeamInfo    = Root + ".auth.team.info"
	SubjectTeamList    = Root + ".auth.team.list"
	SubjectTeamUpdate  = Root + ".auth.team.update"
	SubjectTeamDelete  = Root + ".auth.team.delete"
	// The organizations' admin subjects (orgs.go): the master key's, and
	// an org_admin's for its own organization (info, list).
	SubjectOrgNew          = Root + ".auth.org.new"
	SubjectOrgInfo         = Root + ".auth.org.info"
	SubjectOrgList         = Root + ".auth.org.list"
	SubjectOrgUpdate       = Root + ".auth.org.update"
	SubjectOrgDelete       = Root + ".auth.org.delete"
	SubjectOrgMemberAdd    = Root + ".auth.org.member_add"
	SubjectOrgMemberDelete = Root + ".auth.org.member_delete"
	// SubjectKeyAll and SubjectTeamAll match every key and team subject
	// above, for auth to serve. SubjectKeyAll also matches SubjectKeyRevoked:
	// a user that only calls the admin API gets AuthAdminSubjects instead.
	SubjectKeyAll  = Root + ".auth.key.*"
	SubjectTeamAll = Root + ".auth.team.*"
	SubjectOrgAll  = Root + ".auth.org.*"

	// SubjectKeyRevoked carries the key id of a key that was deleted, blocked or
	// expired, so every ingress cancels that key's in-flight calls.
	SubjectKeyRevoked = Root + ".auth.key.revoked"
	// SubjectAuthChanged is published (empty body) whenever auth's keys or
	// teams change in any way, so an ingress drops every verify answer it
	// cached (VerifyCacheTTL).
	SubjectAuthChanged = Root + ".auth.changed"

	// SubjectRateCounters prefixes the rpm_limit counters in
	// StreamRateCounters (RateCounterSubject); SubjectRateCountersAll is the
	// stream's subject.
	SubjectRateCounters    = Root + ".rpm"
	SubjectRateCountersAll = SubjectRateCounters + ".>"
)

// AuthAdminSubjects are the key, team and organization admin subjects, one
// by one: what the ingress may call, without the announcements a wildcard
// would match.
var AuthAdminSubjects = []string{SubjectKeyGenerate, SubjectKeyInfo, SubjectKeyList, SubjectKeyUpdate, SubjectKeyDelete,
	SubjectTeamNew, SubjectTeamInfo, SubjectTeamList, SubjectTeamUpdate, SubjectTeamDelete,
	SubjectOrgNew, SubjectOrgInfo, SubjectOrgList, SubjectOrgUpdate, SubjectOrgDelete, SubjectOrgMemberAdd, SubjectOrgMemberDelete}

// RateCounterSubject is the counter of one key or team (scope "key" or
// "team", id its token or team id) in one wall-clock minute (Unix minutes).
func RateCounterSubject(scope, id string, minute int64) string {
	return SubjectRateCounters + "." + scope + "." + id + "." + strconv.FormatInt(minute, 10)
}

// Registry service (registry/, bus/registry_api.go for the bodies).
const (
	// SubjectRegistryGet and SubjectRegistryList answer server lookups (registry service).
	SubjectRegistryGet  = Root + ".registry.get"
	SubjectRegistryList = Root + ".registry.list"
	// SubjectRegistryCreate and SubjectRegistryUpdate take the LiteLLM body of
	// POST / PUT /v1/mcp/server; SubjectRegistryDelete takes a ServerRef and
	// answers a DeleteServerReply.
	SubjectRegistryCreate = Root + ".registry.create"
	SubjectRegistryUpdate = Root + ".registry.update"
	SubjectRegistryDelete = Root + ".registry.delete"
	// SubjectRegistryDrain takes a DrainRequest and SubjectRegistryCanary a
	// CanaryRequest (server_ops.go); both answer the changed ServerRecord.
	SubjectRegistryDrain  = Root + ".registry.drain"
	SubjectRegistryCanary = Root + ".registry.canary"
	// SubjectRegistryAll matches every registry subject.
	SubjectRegistryAll = Root + ".registry.*"
)

// Router and tool workers.
const (
	// SubjectRouterRPC takes every downstream JSON-RPC message (router service).
	SubjectRouterRPC = Root + ".router.rpc"
	// SubjectCancel carries a request id whose upstream call must stop.
	SubjectCancel = Root + ".cancel"
	// SubjectCancelRequest carries a CancelRequest: a client's
	// notifications/cancelled, translated to the request it names.
	SubjectCancelRequest = Root + ".cancel.request"
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
// ToolRPC("*") matches every server's.
func ToolRPC(server string) string { return ToolGroup(server) + ".rpc" }

// ToolInfo answers the upstream's initialize result (capabilities, serverInfo).
// ToolInfo("*") matches every server's.
func ToolInfo(server string) string { return ToolGroup(server) + ".info" }

// ToolQueue is the queue group shared by all replicas of one server's worker, so
// replicas split the load and a slow upstream only backs up its own subject.
func ToolQueue(server string) string { return "mcpbus.tool." + server }

// Notifications of a server (catalog changes, resource updates): stream.go.
const (
	// SubjectNotifyAll matches every server's NotifySubject.
	SubjectNotifyAll = Root + ".notify.*"
)

// NotifySubject carries one server's catalog and resource notifications.
func NotifySubject(server string) string { return Root + ".notify." + server }

// ServerOfNotify returns the server a NotifySubject names.
func ServerOfNotify(subject string) string {
	return strings.TrimPrefix(subject, Root+".notify.")
}

// Messages for a client: the streams of POSTs and of sessions (stream.go
// describes the contract).
const (
	// SubjectSessionClosed carries the id of a downstream session that ended
	// (DELETE or expiry), so workers close upstream sessions opened for it.
	SubjectSessionClosed = Root + ".session.closed"
	// SubjectStreamAll and SubjectSessionEventsAll match every POST's stream
	// and every session's events, with their senders.
	SubjectStreamAll        = Root + ".stream.>"
	SubjectSessionEventsAll = Root + ".session.events.>"

	// GatewayToken is the sender token of messages for a client that the
	// gateway itself makes (the router's warnings, the ingress's legacy
	// answers); server names cannot take it (they start with a letter or digit).
	GatewayToken = "_gateway"
)

// SessionSubject is the base subject of one downstream session's GET stream
// (and, for a legacy session, its Envelope.Stream): messages for it go to
// ClientSubject(SessionSubject(sid), sender). SessionSubject("*") matches
// every session's.
func SessionSubject(sid string) string { return Root + ".session.events." + sid }

// ClientSubject is where a message for a client goes: base (an
// Envelope.Stream, or SessionSubject) and the token of its sender, a server's
// name or GatewayToken. The sender is in the subject, not in a header, so
// bus permissions hold a worker to its own servers' tokens (a worker cannot
// pose as another server to a session), and the ingress reads who sent a
// message from where it arrived (SenderOf).
func ClientSubject(base, sender string) string { return base + "." + sender }

// SenderOf returns the sender token of a ClientSubject.
func SenderOf(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] }

// StreamPrefix is the wildcard one ingress process subscribes to for the
// streams of all its in-flight POSTs (StreamSubject names one of them; its
// messages come on ClientSubject(StreamSubject, sender)) and their replies.
func StreamPrefix(ingressID string) string { return Root + ".stream." + ingressID + ".>" }

// StreamSubject is the stream subject of one POST handled by ingressID.
// StreamSubject("*", "*") matches every POST's.
func StreamSubject(ingressID, token string) string {
	return Root + ".stream." + ingressID + "." + token
}

// Answers to server-to-client requests (stream.go: ServerRequestID).
const (
	// SubjectServerRequestAll matches the answers to every server's requests.
	SubjectServerRequestAll = Root + ".s2c.>"
)

// serverRequestSubject is where the answer to request n of the worker
// replica workerToken of server goes.
func serverRequestSubject(server, workerToken, n string) string {
	return Root + ".s2c." + server + "." + workerToken + "." + n
}

// ServerRequestSubjects is the wildcard a worker replica of server
// subscribes to for the answers to its server-to-client requests; bus
// permissions hold a worker to its own servers' answers.
// ServerRequestSubjects(server, "*") matches every replica's.
func ServerRequestSubjects(server, workerToken string) string {
	return serverRequestSubject(server, workerToken, "*")
}

// ServerRequestReplySubject is where the answer to the server-to-client
// request with downstream id must go. ok is false for an id the gateway did
// not make (a JSON string holding ServerRequestID's form: a server name and a worker token of
// at most MaxTokenLen characters and a number of at most 20 digits), so no
// client id can make the subject longer than the gateway's own.
func ServerRequestReplySubject(id json.RawMessage) (subject string, ok bool) {
	var s string
	if json.Unmarshal(id, &s) != nil {
		return "", false
	}
	rest, found := strings.CutPrefix(s, serverRequestIDPrefix)
	if !found {
		return "", false
	}
	server, rest, found := strings.Cut(rest, ".")
	if !found || !ValidToken(server) {
		return "", false
	}
	token, n, found := strings.Cut(rest, ".")
	if !found || !ValidToken(token) || !digits(n) {
		return "", false
	}
	return serverRequestSubject(server, token, n), true
}

// Connectors (`mcpbus connector`): the registry's answers about the servers
// a connector serves, which hold the gateway's policy for each and no
// credential (a record with transport connector cannot hold one). A
// connector asks ConnectorGet(server) for the record and hears of each
// change on ConnectorChanged(server) (an empty body: no such record any
// more). Both name the server, so bus permissions hold a connector to its
// own servers. ConnectorGet("*") and ConnectorChanged("*") match every
// server's.
func ConnectorGet(server string) string { return Root + ".connector." + server + ".get" }

// ConnectorChanged: see ConnectorGet.
func ConnectorChanged(server string) string { return Root + ".connector." + server + ".changed" }

// ServerOfConnectorGet returns the server a ConnectorGet subject names.
func ServerOfConnectorGet(subject string) string {
	return strings.TrimSuffix(strings.TrimPrefix(subject, Root+".connector."), ".get")
}

// Usage events (usage.go, usage_stream.go).
const (
	// SubjectUsageAll matches every usage event.
	SubjectUsageAll = Root + ".usage.>"
)

// UsageSubject is where the event of one MCP call is published:
// mcpbus.v1.usage.<team>.<server>.<tool>. Parts that are empty or not
// tokens (ValidToken) are replaced so the subject is always well formed and
// bounded, whatever tool name a caller sends.
func UsageSubject(team, server, tool string) string {
	return Root + ".usage." + usageToken(team, "_noteam") + "." + usageToken(server, "_none") + "." + usageToken(tool, "_none")
}

// UsageFilter is the subject filter for usage events of one team, server
// and tool; an empty part matches any. UsageFilter("", "github", "") is
// mcpbus.v1.usage.*.github.*.
func UsageFilter(team, server, tool string) string {
	part := func(s string) string {
		if s == "" {
			return "*"
		}
		return usageToken(s, "")
	}
	return Root + ".usage." + part(team) + "." + part(server) + "." + part(tool)
}

// usageOfServer matches the usage events of server (a name or "*", taken as
// it is), for permissions.
func usageOfServer(server string) string { return Root + ".usage.*." + server + ".*" }

// Liveness recalls (liveness_recall.go).
const (
	// SubjectRecall prefixes every responder's recall subject.
	SubjectRecall = Root + ".recall"
)

// RecallSubject is the subject a responder with id takes recalls on.
// RecallSubject("*") matches every responder's.
func RecallSubject(id string) string { return SubjectRecall + "." + id }

// InboxPrefix is the reply-subject prefix of user's connections: each user
// may subscribe to its own replies only, so no service can read answers meant
// for another (a minted key, a verify answer).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// Replies to requests with liveness (liveness.go), which a responder answers
// with many messages on one reply subject (acknowledgement, heartbeats, the
// answer): ReplySubject(ReplyPrefix(user)+"."+conn, token, sender). A user
// may subscribe to its own prefix only, and a responder may publish to the
// replies tagged with its own sender token only (ReplyFrom), by its static
// grant. nats-server then keeps no response permission per request, which
// for such a responder would live for ReplyWindow (about an hour) each.
func ReplyPrefix(user string) string { return Root + ".reply." + user }

// ReplySubject is one request's reply subject under prefix (ReplyPrefix and
// a connection token), for sender.
func ReplySubject(prefix, token, sender string) string { return prefix + "." + token + "." + sender }

// ReplyFrom matches every reply subject tagged for sender: its grant.
func ReplyFrom(sender string) string { return Root + ".reply.*.*.*." + sender }

// AnswererOf is the sender token of whoever answers a request on subject:
// a server's name for its workers (ToolRPC, ToolInfo), GatewayToken for the
// router, LLMSender for a deployment's workers; "" for anything else.
func AnswererOf(subject string) string {
	switch {
	case subject == SubjectRouterRPC:
		return GatewayToken
	case strings.HasPrefix(subject, Root+".llm.deployment.") && strings.HasSuffix(subject, ".rpc"):
		return LLMSender
	}
	rest, ok := strings.CutPrefix(subject, Root+".tool.")
	if !ok {
		return ""
	}
	server, kind, ok := strings.Cut(rest, ".")
	if !ok || server == "" || kind != "rpc" && kind != "info" {
		return ""
	}
	return server
}

// ---- NATS's own subjects ----

// KVPrefix is the prefix of the subjects of bucket's keys: a key's subject
// is KVPrefix(bucket)+key (KVSubject), and trimming it off gives the key.
func KVPrefix(bucket string) string { return "$KV." + bucket + "." }

// KVSubject is the subject of key in bucket; KVSubject(bucket, ">") matches
// every key.
func KVSubject(bucket, key string) string { return KVPrefix(bucket) + key }

// KVStream is the name of the stream that holds bucket.
func KVStream(bucket string) string { return "KV_" + bucket }

// The JetStream API subjects the bus uses or grants: gets and stream
// lookups (kvfollow.go, msgget.go, usage_read.go) and the permissions
// (natsauth.go).
const (
	jsAPIInfo     = "$JS.API.INFO"
	jsFlowControl = "$JS.FC.>" // flow control of a user's own consumers
)

func jsStreamInfo(stream string) string   { return "$JS.API.STREAM.INFO." + stream }
func jsStreamCreate(stream string) string { return "$JS.API.STREAM.CREATE." + stream }
func jsStreamUpdate(stream string) string { return "$JS.API.STREAM.UPDATE." + stream }
func jsStreamPurge(stream string) string  { return "$JS.API.STREAM.PURGE." + stream }
func jsMsgGet(stream string) string       { return "$JS.API.STREAM.MSG.GET." + stream }

// jsDirectGet is the direct get of stream; jsDirectGetLast(stream, subject)
// asks for subject's last message.
func jsDirectGet(stream string) string              { return "$JS.API.DIRECT.GET." + stream }
func jsDirectGetLast(stream, subject string) string { return jsDirectGet(stream) + "." + subject }

// jsConsumer is the API subject of op (CREATE, DURABLE.CREATE, INFO,
// DELETE, MSG.NEXT) on stream's consumers; jsAck acknowledges them.
func jsConsumer(op, stream string) string { return "$JS.API.CONSUMER." + op + "." + stream }
func jsAck(stream string) string          { return "$JS.ACK." + stream }

// The micro framework's discovery subjects ($SRV.PING, $SRV.INFO,
// $SRV.STATS, each bare and per service).
const (
	microAll   = "$SRV.>"
	microPing  = "$SRV.PING"
	microInfo  = "$SRV.INFO"
	microStats = "$SRV.STATS"
)

// ReplySecret is an unguessable subject token (16 hex characters from
// crypto/rand) for the last part of a reply subject: a responder that saw
// one request's reply subject cannot derive another's, so a bus user allowed
// to publish to a requester's replies (a connector) can answer only what it
// was asked.
func ReplySecret() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
