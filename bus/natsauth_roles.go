package bus

import (
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The permissions of each role: which subjects a bus user holding it may
// publish and subscribe to (the users themselves: natsauth.go; the subject
// lists the roles are built from: natsauth_grants.go).

// ReplyWindow is how long a service may answer a request it received.
const ReplyWindow = MaxCallTimeout + CallGrace + time.Minute

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
	if slices.ContainsFunc(roles, func(r Role) bool { return r == RoleIngress || r == RoleRouter || r == RoleLLM }) {
		// They ask workers with liveness (WorkerRequester): their replies.
		sub = append(sub, ReplyPrefix(user)+".>")
	}
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
		pub = append(pub, streamCreator(StreamAudit)...) // audit.go
		pub = append(pub, streamCreator(KVStream(BucketOAuthTokens))...)
		pub = append(pub, streamCreator(KVStream(BucketLists))...)
		pub = append(pub, streamCreator(KVStream(BucketCatalogs))...)
		pub = append(pub, streamCreator(KVStream(BucketOAuthFlows))...) // useroauth.go
		// Users' own upstream credentials (usercreds.go): it seals and
		// writes them, and answers their API.
		pub = append(pub, kvOwner(BucketUserCredentials)...)
		// Tool pins (pins.go): it makes the bucket, answers the pin API
		// and announces approvals.
		pub = append(pub, kvOwner(BucketToolPins)...)
		pub = append(pub, PinEventSubject("*"))
		// It makes the tasks bucket (tasks.go); workers and the router use it.
		pub = append(pub, streamCreator(KVStream(BucketTasks))...)
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
			ClientSubject(StreamSubject("*", "*"), GatewayToken), ReplyFrom(GatewayToken), RecallSubject("*"))
		// The audit records of the calls it refuses (router/audit.go).
		pub = append(pub, AuditFilter("", AuditDenied))
		// Tasks (tasks.go): read every caller's, follow one while
		// tasks/result waits, mark one cancelled and tell its workers.
		tp, ts := kvFollower(BucketTasks, nil)
		pub, sub = append(append(pub, tp...), KVSubject(BucketTasks, ">"), TaskCancelAll), append(sub, ts...)
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
		// And the same keys of the kept catalogs (catalogs_bucket.go).
		for _, bucket := range []string{BucketLists, BucketCatalogs} {
			p, s = kvFollower(bucket, listKeys)
			pub, sub = append(pub, p...), append(sub, s...)
			if len(servers) == 0 {
				pub = append(pub, KVSubject(bucket, ">"))
			}
			for _, k := range listKeys {
				pub = append(pub, KVSubject(bucket, k))
			}
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
		// Its servers' tool pins (pins.go): read (MSG.GET cannot be
		// limited to keys), followed and written under its servers' keys
		// only, and their pin events.
		pinKeys := []string(nil)
		for _, n := range servers {
			pinKeys = append(pinKeys, PinKeys(n))
		}
		p, s = kvFollower(BucketToolPins, pinKeys)
		pub, sub = append(pub, p...), append(sub, s...)
		if len(servers) == 0 {
			pub = append(pub, KVSubject(BucketToolPins, ">"), PinEventSubject("*"))
		}
		for i, k := range pinKeys {
			pub = append(pub, KVSubject(BucketToolPins, k), PinEventSubject(servers[i]))
		}
		// Its servers' tasks (tasks.go): read (MSG.GET cannot be limited
		// to keys), written under its servers' keys only, and their
		// cancellations heard.
		taskKeys := []string(nil)
		for _, n := range servers {
			taskKeys = append(taskKeys, TaskServerKeys(n))
		}
		p, _ = kvFollower(BucketTasks, taskKeys)
		pub = append(pub, p...)
		if len(servers) == 0 {
			pub, sub = append(pub, KVSubject(BucketTasks, ">")), append(sub, TaskCancelAll)
		}
		for i, k := range taskKeys {
			pub, sub = append(pub, KVSubject(BucketTasks, k)), append(sub, TaskCancelSubject(servers[i]))
		}
		// The signing key (signing.go), read only.
		p, s = kvFollower(BucketSigningKeys, []string{SigningKeyCurrent})
		pub, sub = append(pub, p...), append(sub, s...)
		p, s = serving(servers)
		pub = append(pub, GuardSubject("*")) // external guards (guard.go)
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
	case RoleAudit:
		// The audit stream, read with gets like the usage stream.
		return streamReader(StreamAudit), nil, false
	case RoleGuards:
		// External guards: the guard requests, answered once each; nothing
		// else (guard.go).
		return nil, []string{GuardSubject("*")}, true
	case RoleServers:
		pub, sub = kvFollower(BucketServers, nil)
		return pub, sub, false
	case RoleLLM:
		// The router asks the deployments' workers, asks auth to admit
		// and to count spend, and records usage as the LLM's; the workers
		// send chunks, as "llm", to the stream of the POST they answer.
		pub = []string{LLMDeploymentAll, ClientSubject(StreamSubject("*", "*"), LLMSender), ReplyFrom(LLMSender), SubjectLLMAll, usageOfServer(LLMUsageServer),
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
		// And the tool pins' events (pins.go), for the servers pages.
		sub = append(sub, SubjectPinEventsAll)
	}
	if serves(RoutesAdmin) {
		// The admin subjects one by one: auth.key.* would match
		// auth.key.revoked, which only auth announces.
		pub = append(pub, AuthAdminSubjects...)
		pub = append(pub, SubjectRegistryAll)
	}
	return pub, sub, true
}
