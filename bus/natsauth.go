package bus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

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
	// RoleServers reads the servers bucket (the ServerCache a process shares
	// between its services).
	RoleServers Role = "servers"
)

// Roles are the roles a configured bus user may hold.
var Roles = []Role{RoleAuth, RoleRegistry, RoleRouter, RoleWorkers, RoleIngress, RoleUsage, RoleServers}

// BusUser is one user of the embedded NATS server.
type BusUser struct {
	User     string
	Password string
	Roles    []Role
	// Servers, for RoleWorkers, limits the servers the user may serve (empty:
	// every server).
	Servers []string
	// InProcess users can connect only in-process (the services of `serve`).
	InProcess bool
	// Unrestricted users may use every subject: for tests and debugging
	// code only; a configured user cannot be one (CheckBusUser, config).
	Unrestricted bool
}

// InboxPrefix is the reply-subject prefix of user's connections: each user
// may subscribe to its own replies only, so no service can read answers meant
// for another (a minted key, a verify answer).
func InboxPrefix(user string) string { return "_INBOX_" + user }

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
	if len(u.Servers) > 0 && !slices.Contains(u.Roles, RoleWorkers) {
		return fmt.Errorf("user %q: servers applies to the workers role only", u.User)
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

// natsUser is u as nats-server wants it.
func (u BusUser) natsUser() *server.User {
	nu := &server.User{Username: u.User, Password: u.Password}
	if !u.Unrestricted {
		nu.Permissions = RolePermissions(u.User, u.Roles, u.Servers)
	}
	if u.InProcess {
		nu.AllowedConnectionTypes = map[string]struct{}{"IN_PROCESS": {}}
	}
	return nu
}

// RolePermissions is what a user holding roles may publish and subscribe to.
// Answers to requests a user received go through nats-server's response
// permission (one reply per request), so no role needs to publish to other
// users' inboxes.
func RolePermissions(user string, roles []Role, servers []string) *server.Permissions {
	pub := []string{
		"$JS.API.INFO",
		"$JS.FC.>", // flow control of the user's own consumers
	}
	sub := []string{InboxPrefix(user) + ".>"}
	var responds bool
	for _, r := range roles {
		p, s, answers := roleSubjects(r, servers)
		pub, sub = append(pub, p...), append(sub, s...)
		responds = responds || answers
	}
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: dedupe(pub)},
		Subscribe: &server.SubjectPermission{Allow: dedupe(sub)},
	}
	if responds {
		perms.Response = &server.ResponsePermission{MaxMsgs: 1}
	}
	return perms
}

// roleSubjects lists one role's subjects; answers says the role answers
// requests (micro services, acknowledgements).
func roleSubjects(r Role, servers []string) (pub, sub []string, answers bool) {
	micro := "$SRV.>" // micro's PING, INFO and STATS
	switch r {
	case RoleAuth:
		pub = append(kvOwner(BucketKeys, BucketTeams, BucketRateLimits), SubjectKeyRevoked, SubjectAuthChanged)
		sub = []string{Root + ".auth.verify", Root + ".auth.key.*", Root + ".auth.team.*", micro}
		return pub, sub, true
	case RoleRegistry:
		// PURGE: records from before sealing lose their plain-text history.
		pub = append(kvOwner(BucketServers), "$JS.API.STREAM.PURGE.KV_"+BucketServers)
		return pub, []string{Root + ".registry.*", micro}, true
	case RoleRouter:
		// stream.>: warnings on an aggregated answer's stream (a server missing).
		pub = append(kvReader(BucketServers), Root+".tool.*.rpc", Root+".tool.*.info", Root+".s2c.>", SubjectCancelRequest, Root+".stream.>")
		return pub, []string{SubjectRouterRPC, SubjectNotifyAll, micro}, true
	case RoleWorkers:
		names := servers
		if len(names) == 0 {
			names = []string{"*"}
		}
		pub = append(kvReader(BucketServers), kvOwner(BucketOAuthTokens)...)
		pub = append(pub, streamOwner(StreamUsage)...)
		pub = append(pub, Root+".usage.>", Root+".stream.>", Root+".session.events.>")
		sub = []string{Root + ".s2c.*.*", SubjectCancel, SubjectCancelRequest, SubjectSessionClosed, micro}
		for _, n := range names {
			pub = append(pub, NotifySubject(n))
			sub = append(sub, ToolRPC(n), ToolInfo(n), NotifySubject(n))
		}
		return pub, sub, true
	case RoleIngress:
		pub = append(kvReader(BucketServers), kvOwner(BucketSessions)...)
		pub = append(pub, SubjectRouterRPC, Root+".tool.*.rpc", Root+".tool.*.info", SubjectAuthVerify,
			Root+".auth.key.*", Root+".auth.team.*", Root+".registry.*", SubjectCancel, SubjectSessionClosed,
			Root+".session.events.>")
		// Not auth.key.revoked: only auth announces revocations.
		pub = slices.DeleteFunc(pub, func(s string) bool { return s == SubjectKeyRevoked })
		sub = []string{Root + ".stream.>", Root + ".session.events.>", SubjectNotifyAll, SubjectKeyRevoked, SubjectAuthChanged}
		return pub, sub, true
	case RoleUsage:
		// Dashboards: the usage stream, and micro's discovery of services.
		return append(streamReader(StreamUsage), "$SRV.PING", "$SRV.PING.>", "$SRV.INFO", "$SRV.INFO.>", "$SRV.STATS", "$SRV.STATS.>"), nil, false
	case RoleServers:
		return kvReader(BucketServers), nil, false
	}
	return nil, nil, false
}

// kvReader: read and watch a bucket.
func kvReader(bucket string) []string {
	return streamReader("KV_" + bucket)
}

// kvOwner: create, read, watch and write a bucket.
func kvOwner(buckets ...string) []string {
	var out []string
	for _, b := range buckets {
		out = append(out, streamOwner("KV_"+b)...)
		out = append(out, "$KV."+b+".>")
	}
	return out
}

// streamReader: look a stream up, read messages directly and through
// consumers of one's own.
func streamReader(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.DELETE." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>",
		"$JS.ACK." + stream + ".>",
	}
}

// streamOwner: streamReader, plus creating and updating the stream.
func streamOwner(stream string) []string {
	return append(streamReader(stream), "$JS.API.STREAM.CREATE."+stream, "$JS.API.STREAM.UPDATE."+stream)
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
