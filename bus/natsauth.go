package bus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The bus is a security boundary. Every connection authenticates, and each
// service's user may publish and subscribe only to the subjects that service
// needs: a worker cannot mint keys or write a server record, a dashboard can
// read usage and nothing else, and only the ingress and the router can reach a
// worker. The embedded server (StartEmbedded) gets one user per in-process
// service with a password made at every start (never written anywhere,
// usable only in-process), plus the users the operator configured for other
// processes (general_settings.mcp_bus_users).

// Role is what a bus user may do: the subjects of one service.
type Role string

const (
	RoleAuth     Role = "auth"     // answers verify and the key/team admin API
	RoleRegistry Role = "registry" // owns the servers bucket and answers the registry API
	RoleRouter   Role = "router"   // takes router.rpc, fans out to workers
	RoleWorkers  Role = "workers"  // serves tool.<server>.* (all servers, or BusUser.Servers)
	RoleIngress  Role = "ingress"  // the HTTP edge: asks everyone, holds session streams
	RoleUsage    Role = "usage"    // reads the usage stream (mcpbus usage, dashboards)
	// RoleServers reads the servers bucket (the server cache a process shares
	// between its services).
	RoleServers Role = "servers"
	// RoleConnector is an outbound-only connector (`mcpbus connector`): it
	// joins as a NATS leaf node only, and serves its own servers
	// (BusUser.Servers, required) the way a worker limited to them does; it
	// reads their records, which hold the gateway's policy only, and no
	// other bucket: their URLs and credentials stay on its machine.
	RoleConnector Role = "connector"
	// RoleLLM runs the LLM router and LLM workers (llm.go): it takes the
	// router's and the deployments' requests and sends chunks to POST
	// streams, and reads no bucket.
	RoleLLM Role = "llm"
	// RoleAgents runs the A2A agent workers (a2a.go): it takes the agents'
	// requests, sends events to POST streams, records agent usage, and
	// reads the agents bucket (agents.go).
	RoleAgents Role = "agents"
)

// Roles are the roles a configured bus user may hold.
var Roles = []Role{RoleAuth, RoleRegistry, RoleRouter, RoleWorkers, RoleIngress, RoleUsage, RoleServers, RoleConnector, RoleLLM, RoleAgents}

// BusUser is one user of the embedded NATS server.
type BusUser struct {
	User     string
	Password string
	Roles    []Role
	// Servers, for RoleWorkers, limits the servers the user may serve (empty:
	// every server); RoleConnector requires them.
	Servers []string
	// Routes, for RoleIngress, limits the route families whose subjects the
	// user may use (nil: every family; ingressSubjects): the NATS user of a
	// public edge serving /mcp only cannot reach the LLM router, the agents
	// or the admin API, even if the edge is compromised.
	Routes []RouteFamily
	// InProcess users can connect only in-process (the services of `serve`).
	InProcess bool
	// Unrestricted users may use every subject: for tests and debugging
	// code only; a configured user cannot be one (CheckBusUser, config).
	Unrestricted bool
}

// NewPassword makes a random password for an in-process user.
func NewPassword() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CheckBusUser validates a configured user: name a token, a password long
// enough not to be guessed, known roles, servers only for workers.
func CheckBusUser(u BusUser) error {
	if !ValidToken(u.User) || strings.HasPrefix(u.User, "mcpbus-") {
		return fmt.Errorf("user %q: must be 1-%d characters of A-Z a-z 0-9 _ - (and not start with mcpbus-, which names the in-process users)", Shorten(u.User, 32), MaxTokenLen)
	}
	if u.Unrestricted {
		return fmt.Errorf("user %q: an unrestricted user cannot be configured", u.User)
	}
	if len(u.Password) < 16 {
		return fmt.Errorf("user %q: password must be at least 16 characters", u.User)
	}
	if len(u.Roles) == 0 {
		return fmt.Errorf("user %q: roles: name at least one of %s", u.User, rolesList())
	}
	for _, r := range u.Roles {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("user %q: unknown role %q (known: %s)", u.User, Shorten(string(r), 32), rolesList())
		}
	}
	connector := slices.Contains(u.Roles, RoleConnector)
	if len(u.Servers) > 0 && !slices.Contains(u.Roles, RoleWorkers) && !connector {
		return fmt.Errorf("user %q: servers applies to the workers and connector roles only", u.User)
	}
	if connector && (len(u.Roles) > 1 || len(u.Servers) == 0) {
		// A connector is a leaf node outside the cluster: it holds
		// nothing but its own servers' subjects.
		return fmt.Errorf("user %q: the connector role stands alone and needs servers (the servers its connector serves)", u.User)
	}
	if u.Routes != nil && !slices.Contains(u.Roles, RoleIngress) {
		return fmt.Errorf("user %q: routes applies to the ingress role only", u.User)
	}
	for _, f := range u.Routes {
		if !slices.Contains(RouteFamilies, f) {
			return fmt.Errorf("user %q: routes: %q is not a route family (one of %s)", u.User, Shorten(string(f), 32), JoinRouteFamilies(RouteFamilies))
		}
	}
	for _, s := range u.Servers {
		if !ValidToken(s) {
			return fmt.Errorf("user %q: servers: %q is not a server name", u.User, Shorten(s, 64))
		}
	}
	return nil
}

func rolesList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// nats-server's names of connection types (jwt.ConnectionType*), for
// AllowedConnectionTypes.
const (
	jwtConnInProcess = "IN_PROCESS"
	jwtConnLeafnode  = "LEAFNODE"
)

// ReplyWindow is how long a service may answer a request it received.
const ReplyWindow = MaxCallTimeout + CallGrace + time.Minute

// NATSUser is u as nats-server wants it: its password, its role permissions
// (RolePermissions), and for an in-process user no socket.
func (u BusUser) NATSUser() *server.User {
	nu := &server.User{Username: u.User, Password: u.Password}
	if !u.Unrestricted {
		nu.Permissions = u.Permissions()
	}
	switch {
	case u.InProcess:
		nu.AllowedConnectionTypes = map[string]struct{}{jwtConnInProcess: {}}
	case slices.Contains(u.Roles, RoleConnector):
		nu.AllowedConnectionTypes = map[string]struct{}{jwtConnLeafnode: {}}
	}
	return nu
}

// NATSUsers is users as nats-server wants them (NATSUser), with one
// addition: a connector's answers cross a leaf link, where nats-server's
// response permission does not reach, so a connector may publish to the
// inboxes of the users that send requests to workers (router, ingress, and
// usage, which discovers them). The reply subjects in them end in a
// ReplySecret: a connector can answer only what it was asked.
func NATSUsers(users []BusUser) []*server.User {
	askers := AskerInboxes(users)
	var out []*server.User // nil, not empty, for none: no authentication
	for _, u := range users {
		nu := u.NATSUser()
		if slices.Contains(u.Roles, RoleConnector) {
			WidenConnector(nu, askers)
		}
		out = append(out, nu)
	}
	return out
}

// AskerInboxes are the inboxes of the users among users that send requests
// to workers, which a connector answers (NATSUsers).
func AskerInboxes(users []BusUser) []string {
	var askers []string
	for _, u := range users {
		if u.Unrestricted || slices.ContainsFunc(u.Roles, func(r Role) bool { return r == RoleRouter || r == RoleIngress || r == RoleUsage }) {
			askers = append(askers, InboxPrefix(u.User)+".>")
		}
	}
	return askers
}

// WidenConnector lets connector user nu publish to the askers' inboxes.
func WidenConnector(nu *server.User, askers []string) {
	if nu.Permissions == nil || nu.Permissions.Publish == nil {
		return
	}
	p := nu.Permissions.Publish
	p.Allow = dedupe(append(slices.Clone(p.Allow), askers...))
}

// IsConnector reports whether nu may join only as a leaf node: a
// connector's user.
func IsConnector(nu *server.User) bool {
	_, leaf := nu.AllowedConnectionTypes[jwtConnLeafnode]
	return leaf && len(nu.AllowedConnectionTypes) == 1
}

// RolePermissions is what a user holding roles may publish and subscribe to.
// Answers to requests a user received go through nats-server's response
// permission, so no role needs to publish to other users' inboxes: one reply
// per request, except for workers and the router, whose replies also carry
// the liveness acknowledgement and heartbeats of a call (liveness.go); and replies are
// allowed for as long as a call may last (MaxCallTimeout, plus CallGrace and
// a minute), not nats-server's default two minutes, so a long call's answer
// is not refused.
func RolePermissions(user string, roles []Role, servers []string) *server.Permissions {
	return rolePermissions(user, roles, servers, nil)
}

// Permissions is what u may publish and subscribe to: its roles' subjects,
// its ingress role's limited to its route families.
func (u BusUser) Permissions() *server.Permissions {
	return rolePermissions(u.User, u.Roles, u.Servers, u.Routes)
}

func rolePermissions(user string, roles []Role, servers []string, routes []RouteFamily) *server.Permissions {
	pub := []string{jsAPIInfo, jsFlowControl}
	sub := []string{InboxPrefix(user) + ".>"}
	var responds bool
	for _, r := range roles {
		p, s, answers := roleSubjects(r, servers, routes)
		pub, sub = append(pub, p...), append(sub, s...)
		responds = responds || answers
	}
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: dedupe(pub)},
		Subscribe: &server.SubjectPermission{Allow: dedupe(sub)},
	}
	if responds {
		perms.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: ReplyWindow}
		if slices.Contains(roles, RoleWorkers) || slices.Contains(roles, RoleRouter) || slices.Contains(roles, RoleLLM) {
			perms.Response.MaxMsgs = -1 // liveness messages too; bounded by Expires
		}
	}
	return perms
}

// roleSubjects lists one role's subjects; answers says the role answers
// requests (micro services, acknowledgements).
//
// JetStream: a consumer's deliver subject and a stream's subjects are not
// checked against their creator's permissions, so a user who may create a
// consumer or create or update a stream can make the server publish or
// capture anything. Only the trusted core roles may: auth (its buckets; it
// mints keys anyway), registry (the servers bucket, and it creates the usage
// stream and the OAuth2 token bucket), ingress (the sessions bucket; it
// carries every caller's key anyway). Router, workers, usage and servers
// read with subscriptions and direct gets only (kvfollow.go, usage_read.go).
func roleSubjects(r Role, servers []string, routes []RouteFamily) (pub, sub []string, answers bool) {
	micro := microAll // micro's PING, INFO and STATS
	switch r {
	case RoleAuth:
		pub = append(kvOwner(BucketKeys, BucketTeams, BucketOrgs, BucketRateLimits), SubjectKeyRevoked, SubjectAuthChanged, SubjectRateCountersAll)
		pub = append(pub, streamCreator(StreamRateCounters)...)
		pub = append(pub, SubjectSpendAll)
		pub = append(pub, streamCreator(StreamSpend)...)
		sub = []string{SubjectAuthVerify, SubjectKeyAll, SubjectTeamAll, SubjectOrgAll, SubjectLLMAll, micro}
		return pub, sub, true
	case RoleRegistry:
		// PURGE: records from before sealing lose their plain-text history.
		pub = append(kvOwner(BucketServers, BucketAgents), jsStreamPurge(KVStream(BucketServers)))
		pub = append(pub, streamCreator(StreamUsage)...)
		pub = append(pub, streamCreator(KVStream(BucketOAuthTokens))...)
		pub = append(pub, streamCreator(KVStream(BucketLists))...)
		pub = append(pub, streamCreator(KVStream(BucketOAuthFlows))...) // useroauth.go
		// Users' own upstream credentials (usercreds.go): it seals and
		// writes them, and answers their API.
		pub = append(pub, kvOwner(BucketUserCredentials)...)
		// The signing key of signed calls, which it alone makes (signing.go).
		sp, _ := kvFollower(BucketSigningKeys, nil)
		pub = append(append(pub, streamCreator(KVStream(BucketSigningKeys))...), sp...)
		pub = append(pub, KVSubject(BucketSigningKeys, ">"))
		// It tells connectors of their servers' records (connector.go).
		pub = append(pub, ConnectorChanged("*"))
		// It follows the bucket it owns like any reader (internal/servercache.Follow).
		return pub, []string{SubjectRegistryAll, SubjectUserCredAll, ConnectorGet("*"), micro, KVSubject(BucketServers, ">"), KVSubject(BucketAgents, ">")}, true
	case RoleRouter:
		// Warnings on an aggregated answer's stream (a server missing), as
		// the gateway.
		pub, sub = kvFollower(BucketServers, nil)
		pub = append(pub, ToolRPC("*"), ToolInfo("*"), SubjectServerRequestAll, SubjectCancelRequest,
			ClientSubject(StreamSubject("*", "*"), GatewayToken), RecallSubject("*"))
		return pub, append(sub, SubjectRouterRPC, SubjectNotifyAll, RecallSubject("*"), micro), true
	case RoleWorkers:
		// A worker limited to servers reads and writes only those servers'
		// records and tokens, and sends, answers and records only as them:
		// it cannot pose as another server to a session, read another
		// server's client answers or credentials, or bill another server.
		pub, sub = kvFollower(BucketServers, servers)
		tokenKeys := []string(nil)
		for _, n := range servers {
			tokenKeys = append(tokenKeys, n, n+".lock")
		}
		p, s := kvFollower(BucketOAuthTokens, tokenKeys)
		pub, sub = append(pub, p...), append(sub, s...)
		if len(servers) == 0 {
			pub = append(pub, KVSubject(BucketOAuthTokens, ">"))
		}
		for _, k := range tokenKeys {
			pub = append(pub, KVSubject(BucketOAuthTokens, k))
		}
		// The shared lists (lists_bucket.go), of its servers only.
		listKeys := []string(nil)
		for _, n := range servers {
			for _, m := range []string{MethodToolsList, MethodPromptsList, MethodResourcesList, MethodResourcesTemplatesList} {
				listKeys = append(listKeys, ListKey(n, m))
			}
		}
		p, s = kvFollower(BucketLists, listKeys)
		pub, sub = append(pub, p...), append(sub, s...)
		if len(servers) == 0 {
			pub = append(pub, KVSubject(BucketLists, ">"))
		}
		for _, k := range listKeys {
			pub = append(pub, KVSubject(BucketLists, k))
		}
		// Its servers' users' credentials (usercreds.go): read, and
		// written (a per-user OAuth sign-in, a refresh: useroauth.go) under
		// its servers' keys only; and those servers' sign-ins in progress.
		credKeys, flowKeys := []string(nil), []string(nil)
		for _, n := range servers {
			credKeys, flowKeys = append(credKeys, "*."+n), append(flowKeys, n+".>")
		}
		p, s = kvFollower(BucketUserCredentials, credKeys)
		pub, sub = append(pub, p...), append(sub, s...)
		p, _ = kvFollower(BucketOAuthFlows, flowKeys)
		pub = append(pub, p...)
		if len(servers) == 0 {
			pub = append(pub, KVSubject(BucketUserCredentials, ">"), KVSubject(BucketOAuthFlows, ">"))
		}
		for i := range credKeys {
			pub = append(pub, KVSubject(BucketUserCredentials, credKeys[i]), KVSubject(BucketOAuthFlows, flowKeys[i]))
		}
		// The signing key (signing.go), read only.
		p, s = kvFollower(BucketSigningKeys, []string{SigningKeyCurrent})
		pub, sub = append(pub, p...), append(sub, s...)
		p, s = serving(servers)
		return append(pub, p...), append(sub, s...), true
	case RoleConnector:
		// A worker limited to servers that asks the registry for their
		// records (the gateway's policy; ConnectorGet), and reads no
		// bucket: JetStream's API does not cross a leaf link without a
		// domain, and the OAuth2 tokens stay on the connector's machine.
		pub, sub = serving(servers)
		for _, n := range servers {
			pub, sub = append(pub, ConnectorGet(n)), append(sub, ConnectorChanged(n))
		}
		// The ingress's direct calls are answered on the POST's reply
		// subject; its last token holds a ReplySecret.
		pub = append(pub, StreamSubject("*", "*"))
		return pub, sub, true
	case RoleIngress:
		return ingressSubjects(routes)
	case RoleUsage:
		// Dashboards: the usage stream, and micro's discovery of services.
		return append(streamReader(StreamUsage), microPing, microPing+".>", microInfo, microInfo+".>", microStats, microStats+".>"), nil, false
	case RoleServers:
		pub, sub = kvFollower(BucketServers, nil)
		return pub, sub, false
	case RoleLLM:
		// The router asks the deployments' workers, asks auth to admit
		// and to count spend, and records usage as the LLM's; the workers
		// send chunks, as "llm", to the stream of the POST they answer.
		pub = []string{LLMDeploymentAll, ClientSubject(StreamSubject("*", "*"), LLMSender), SubjectLLMAll, usageOfServer(LLMUsageServer),
			SubjectRouterRPC,   // MCP tools on /v1/responses, as the caller
			RecallSubject("*")} // liveness of a deployment's call (liveness.go)
		sub = []string{SubjectLLMRouterAll, LLMDeploymentAll, SubjectCancel, RecallSubject("*"), micro}
		return pub, sub, true
	case RoleAgents:
		// The workers send events, as "_a2a", to the stream of the POST
		// they answer, and record agent usage only (one token more than
		// an MCP call's: they cannot bill as a server).
		// They follow the agents bucket (the registry writes it).
		pub, sub = kvFollower(BucketAgents, nil)
		pub = append(pub, ClientSubject(StreamSubject("*", "*"), A2ASender), AgentUsageFilter("", "", ""))
		sub = append(sub, AgentRPCAll, AgentCardAll, SubjectAgentList, SubjectCancel, micro)
		return pub, sub, true
	}
	return nil, nil, false
}

// ingressSubjects are the ingress role's subjects: those every route
// needs (verifying keys, the servers bucket for readiness, the answer
// streams, cancellations, revocations), and each served family's (nil:
// every family).
func ingressSubjects(routes []RouteFamily) (pub, sub []string, answers bool) {
	serves := func(f RouteFamily) bool { return routes == nil || slices.Contains(routes, f) }
	pub, sub = kvFollower(BucketServers, nil)
	pub = append(pub, SubjectAuthVerify, SubjectCancel)
	sub = append(sub, SubjectStreamAll, SubjectKeyRevoked, SubjectAuthChanged)
	// The public halves of the signing keys, for the JWKS every ingress
	// serves (ingress/jwks.go; signing.go).
	p, s := kvFollower(BucketSigningKeys, []string{SigningKeyCurrent, SigningKeyPrevious})
	pub, sub = append(pub, p...), append(sub, s...)
	if serves(RoutesMCP) {
		pub = append(pub, kvOwner(BucketSessions)...)
		pub = append(pub, SubjectRouterRPC, ToolRPC("*"), ToolInfo("*"), SubjectRegistryGet, SubjectRegistryList,
			SubjectSessionClosed, RecallSubject("*"), ClientSubject(SessionSubject("*"), GatewayToken),
			SubjectUserCredAll,                        // a caller's own upstream credentials (usercreds.go)
			ToolOAuthStart("*"), ToolOAuthFinish("*"), // and the browser's half of a sign-in (useroauth.go)
			ToolOAuthExchange("*")) // and callers' tokens to exchange (useroauth_exchange.go)
		sub = append(sub, SubjectSessionEventsAll, SubjectNotifyAll)
		// The interest that lets connectors' usage events leave their
		// leaf node (gateway's connector_bridge.go); what arrives is dropped.
		sub = append(sub, usageOfServer("*"))
	}
	if serves(RoutesLLM) {
		pub = append(pub, SubjectLLMRouterAll)
	}
	if serves(RoutesAgents) {
		pub = append(pub, AgentRPCAll, AgentCardAll, SubjectAgentList, SubjectAgentCreate, SubjectAgentUpdate, SubjectAgentDelete)
	}
	if serves(RoutesUI) {
		// Sign-in sessions (ingress/ui_session.go); the live feed reads
		// auth.changed, which every ingress hears.
		pub = append(pub, kvOwner(BucketUISessions)...)
		// Usage figures and the live tail (ingress/ui_usage.go).
		pub = append(pub, streamReader(StreamUsage)...)
		// The cluster page: every micro service's stats (ingress/ui_cluster.go).
		pub = append(pub, microStats)
		// The live feed follows the agents bucket (ingress/ui_routes.go).
		p, s := kvFollower(BucketAgents, nil)
		pub, sub = append(pub, p...), append(sub, s...)
	}
	if serves(RoutesAdmin) {
		// The admin subjects one by one: auth.key.* would match
		// auth.key.revoked, which only auth announces.
		pub = append(pub, AuthAdminSubjects...)
		pub = append(pub, SubjectRegistryAll)
	}
	return pub, sub, true
}

// serving is what serving servers (none: every server) takes besides the
// buckets: their requests, cancellations and client answers; sending, as
// them only, notifications and messages for clients; recording their usage.
func serving(servers []string) (pub, sub []string) {
	pub = []string{jsStreamInfo(StreamUsage)}
	sub = []string{SubjectCancel, SubjectCancelRequest, SubjectSessionClosed, RecallSubject("*"), microAll}
	names := servers
	if len(names) == 0 {
		names = []string{"*"}
	}
	for _, n := range names {
		pub = append(pub, NotifySubject(n), ClientSubject(StreamSubject("*", "*"), n), ClientSubject(SessionSubject("*"), n),
			usageOfServer(n))
		sub = append(sub, ToolRPC(n), ToolInfo(n), NotifySubject(n), ServerRequestSubjects(n, "*"), ToolOAuthStart(n), ToolOAuthFinish(n), ToolOAuthExchange(n))
	}
	return pub, sub
}

// kvFollower: read a bucket (all of it, or the named keys only) the way
// FollowKV does: subscriptions to its subjects and gets, no consumer. Only
// the servers bucket (registry-written) is read with direct gets, keyed by
// subject; other buckets with MSG.GET, which cannot be limited to keys
// (msgget.go says why not direct gets).
func kvFollower(bucket string, keys []string) (pub, sub []string) {
	stream := KVStream(bucket)
	pub = []string{jsStreamInfo(stream)}
	if !directReadable(bucket) {
		pub = append(pub, jsMsgGet(stream))
		if len(keys) == 0 {
			return pub, []string{KVSubject(bucket, ">")}
		}
		for _, k := range keys {
			sub = append(sub, KVSubject(bucket, k))
		}
		return pub, sub
	}
	if len(keys) == 0 {
		return append(pub, jsDirectGet(stream), jsDirectGetLast(stream, ">")), []string{KVSubject(bucket, ">")}
	}
	for _, k := range keys {
		pub = append(pub, jsDirectGetLast(stream, KVSubject(bucket, k)))
		sub = append(sub, KVSubject(bucket, k))
	}
	return pub, sub
}

// streamReader: read a stream with MSG.GET (usage_read.go; msgget.go says
// why not direct gets).
func streamReader(stream string) []string {
	return []string{jsStreamInfo(stream), jsMsgGet(stream)}
}

// kvOwner: create, read, watch and write a bucket (trusted roles only).
func kvOwner(buckets ...string) []string {
	var out []string
	for _, b := range buckets {
		out = append(out, streamOwner(KVStream(b))...)
		out = append(out, KVSubject(b, ">"))
	}
	return out
}

// streamCreator: create or update a stream, and look it up.
func streamCreator(stream string) []string {
	return []string{jsStreamInfo(stream), jsStreamCreate(stream), jsStreamUpdate(stream)}
}

// streamOwner: look a stream up, read it directly and through consumers of
// one's own, create and update it (trusted roles only).
func streamOwner(stream string) []string {
	return append(streamCreator(stream),
		jsMsgGet(stream), jsDirectGet(stream), jsDirectGetLast(stream, ">"),
		jsConsumer("CREATE", stream), jsConsumer("CREATE", stream)+".>",
		jsConsumer("DURABLE.CREATE", stream)+".>", jsConsumer("INFO", stream)+".>",
		jsConsumer("DELETE", stream)+".>", jsConsumer("MSG.NEXT", stream)+".>", jsAck(stream)+".>")
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
