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
// processes (general_settings.mcp_bus_users). What each role may use is in
// natsauth_roles.go.

// Role is what a bus user may do: the subjects of one service.
type Role string

const (
	RoleAuth     Role = "auth"     // answers verify and the key/team admin API
	RoleRegistry Role = "registry" // owns the servers bucket and answers the registry API
	RoleRouter   Role = "router"   // takes router.rpc, fans out to workers
	RoleWorkers  Role = "workers"  // serves tool.<server>.* (all servers, or BusUser.Servers)
	RoleIngress  Role = "ingress"  // the HTTP edge: asks everyone, holds session streams
	RoleUsage    Role = "usage"    // reads the usage stream (mcpbus usage, dashboards)
	// RoleAudit reads the audit stream (mcpbus audit, docs/AUDIT.md), which
	// may hold calls' arguments: a role of its own, not the dashboards'.
	RoleAudit Role = "audit"
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
	// RoleGuards serves external guards (guard.go, docs/GUARDS.md): it
	// takes the guard requests of every call it is asked about, and
	// answers them.
	RoleGuards Role = "guards"
)

// Roles are the roles a configured bus user may hold.
var Roles = []Role{RoleAuth, RoleRegistry, RoleRouter, RoleWorkers, RoleIngress, RoleUsage, RoleAudit, RoleServers, RoleConnector, RoleLLM, RoleAgents, RoleGuards}

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
