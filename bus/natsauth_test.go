package bus

import (
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestCheckBusUser(t *testing.T) {
	ok := BusUser{User: "worker-eu", Password: "a-password-of-16+", Roles: []Role{RoleWorkers}, Servers: []string{"github"}}
	if err := CheckBusUser(ok); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]struct {
		change func(*BusUser)
		want   string
	}{
		"bad name":          {func(u *BusUser) { u.User = "a b" }, "must be 1-128 characters"},
		"reserved name":     {func(u *BusUser) { u.User = "mcpbus-ingress" }, "not start with mcpbus-"},
		"short password":    {func(u *BusUser) { u.Password = "short" }, "at least 16 characters"},
		"no role":           {func(u *BusUser) { u.Roles = nil }, "name at least one of"},
		"unknown role":      {func(u *BusUser) { u.Roles = []Role{"root"} }, `unknown role "root"`},
		"servers, no work":  {func(u *BusUser) { u.Roles = []Role{RoleUsage} }, "workers and connector roles only"},
		"connector, more":   {func(u *BusUser) { u.Roles = []Role{RoleConnector, RoleWorkers} }, "connector role stands alone"},
		"connector, none":   {func(u *BusUser) { u.Roles, u.Servers = []Role{RoleConnector}, nil }, "connector role stands alone and needs servers"},
		"bad server":        {func(u *BusUser) { u.Servers = []string{"a.b"} }, "is not a server name"},
		"unrestricted user": {func(u *BusUser) { u.Unrestricted = true }, "cannot be configured"},
	} {
		u := ok
		c.change(&u)
		if err := CheckBusUser(u); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", what, err, c.want)
		}
	}
}

// A connector is a leaf node outside the cluster: it serves its own
// servers as a worker limited to them does, reads no bucket (its specs and
// credentials stay with it), joins only as a leaf node, and answers the
// services that ask workers, across a link where nats-server's response
// permission does not reach.
func TestConnectorPermissions(t *testing.T) {
	users := []BusUser{
		{User: "r", Roles: []Role{RoleRouter}}, {User: "i", Roles: []Role{RoleIngress}}, {User: "a", Roles: []Role{RoleAuth}},
		{User: "laptop", Roles: []Role{RoleConnector}, Servers: []string{"files"}},
	}
	nu := NATSUsers(users)
	c := nu[3]
	if _, ok := c.AllowedConnectionTypes["LEAFNODE"]; !ok || len(c.AllowedConnectionTypes) != 1 {
		t.Errorf("a connector may connect as %v, want LEAFNODE only", c.AllowedConnectionTypes)
	}
	pub, sub := c.Permissions.Publish.Allow, c.Permissions.Subscribe.Allow
	for _, s := range []string{ToolRPC("files"), ToolInfo("files"), InboxPrefix("laptop") + ".>", ConnectorChanged("files")} {
		if !slices.Contains(sub, s) {
			t.Errorf("a connector for files cannot subscribe to %s", s)
		}
	}
	for _, s := range append(sub, pub...) {
		if strings.Contains(s, ToolRPC("*")) || strings.Contains(s, "$KV") || strings.Contains(s, "DIRECT") || strings.Contains(s, "MSG.GET") {
			t.Errorf("a connector may use %s: it reads no bucket", s)
		}
	}
	for _, s := range []string{InboxPrefix("r") + ".>", InboxPrefix("i") + ".>", usageOfServer("files"), ConnectorGet("files")} {
		if !slices.Contains(pub, s) {
			t.Errorf("a connector cannot publish to %s: %v", s, pub)
		}
	}
	if slices.Contains(pub, InboxPrefix("a")+".>") {
		t.Error("a connector may publish to auth's inbox, which asks no worker")
	}
	if slices.Contains(nu[0].Permissions.Publish.Allow, InboxPrefix("i")+".>") {
		t.Error("NATSUsers widened a user that is no connector")
	}
}

// What each role may do is the least its service needs: the table the
// security suite's bus tests rely on.
func TestRolePermissions(t *testing.T) {
	w := RolePermissions("w", []Role{RoleWorkers}, []string{"github"})
	has := func(l []string, s string) bool { return slices.Contains(l, s) }
	if !has(w.Subscribe.Allow, ToolRPC("github")) || has(w.Subscribe.Allow, ToolRPC("*")) {
		t.Errorf("a worker limited to github subscribes to %v", w.Subscribe.Allow)
	}
	for _, s := range []string{SubjectKeyGenerate, "$KV." + BucketServers + ".>", "$KV." + BucketKeys + ".>", ToolRPC("*"), SubjectKeyRevoked, "$JS.API.STREAM.UPDATE.KV_" + BucketServers} {
		if has(w.Publish.Allow, s) {
			t.Errorf("a worker may publish to %s", s)
		}
	}
	if !has(w.Subscribe.Allow, InboxPrefix("w")+".>") || has(w.Subscribe.Allow, "_INBOX.>") {
		t.Errorf("a worker's replies: %v", w.Subscribe.Allow)
	}
	all := RolePermissions("w", []Role{RoleWorkers}, nil)
	if !has(all.Subscribe.Allow, ToolRPC("*")) {
		t.Error("a worker for every server cannot serve them")
	}
	ing := RolePermissions("i", []Role{RoleIngress}, nil)
	if has(ing.Publish.Allow, SubjectKeyRevoked) || has(ing.Publish.Allow, "$KV."+BucketServers+".>") || !has(ing.Publish.Allow, ToolRPC("*")) {
		t.Errorf("ingress publishes %v", ing.Publish.Allow)
	}
	// Replies: one per request (workers: the liveness messages too), for as
	// long as a call may last.
	if all.Response == nil || all.Response.MaxMsgs >= 0 || all.Response.Expires < MaxCallTimeout {
		t.Errorf("workers' replies: %+v", all.Response)
	}
	r := RolePermissions("r", []Role{RoleRouter}, nil)
	if a := RolePermissions("a", []Role{RoleAuth}, nil); a.Response == nil || a.Response.MaxMsgs != 1 {
		t.Errorf("auth's replies: %+v", a.Response)
	}
	if r.Response == nil || r.Response.MaxMsgs >= 0 || r.Response.Expires < MaxCallTimeout {
		t.Errorf("router's replies: %+v", r.Response)
	}
	u := RolePermissions("u", []Role{RoleUsage}, nil)
	if u.Response != nil || len(u.Subscribe.Allow) != 1 || has(u.Publish.Allow, "$JS.API.STREAM.INFO.KV_"+BucketServers) {
		t.Errorf("usage: %+v %+v", u.Publish, u.Subscribe)
	}
}

// Only auth announces revocations and auth changes, and only auth answers
// key verification: another role's user that could publish a forged
// revocation would cancel any key's calls on every ingress. Checked by
// subject matching, as the server checks, not by exact strings: a wildcard
// such as auth.key.* would match auth.key.revoked.
func TestOnlyAuthSpeaksForAuth(t *testing.T) {
	for _, r := range Roles {
		p := RolePermissions("u", []Role{r}, nil)
		var pub, sub []string
		if p.Publish != nil {
			pub = p.Publish.Allow
		}
		if p.Subscribe != nil {
			sub = p.Subscribe.Allow
		}
		auth := r == RoleAuth
		for _, s := range []string{SubjectKeyRevoked, SubjectAuthChanged} {
			if may(pub, s) != auth {
				t.Errorf("role %s may publish %s: %v", r, s, may(pub, s))
			}
		}
		if may(sub, SubjectAuthVerify) != auth {
			t.Errorf("role %s may answer %s: %v", r, SubjectAuthVerify, may(sub, SubjectAuthVerify))
		}
	}
	// The ingress still reaches every admin subject it forwards to.
	ing := RolePermissions("i", []Role{RoleIngress}, nil)
	for _, s := range append(slices.Clone(AuthAdminSubjects), SubjectAuthVerify, SubjectRegistryCreate) {
		if !may(ing.Publish.Allow, s) {
			t.Errorf("the ingress may not publish %s", s)
		}
	}
}

// An ingress user limited to route families gets only their subjects: a
// public edge's user (routes: [mcp]) cannot ask the LLM router, the
// agents, auth's admin API or the registry's writes.
func TestIngressUserLimitedToRoutes(t *testing.T) {
	edge := BusUser{User: "edge", Password: "edge-password-0123456789", Roles: []Role{RoleIngress}, Routes: []RouteFamily{RoutesMCP}}
	if err := CheckBusUser(edge); err != nil {
		t.Fatal(err)
	}
	p := edge.Permissions()
	for _, s := range []string{SubjectRouterRPC, ToolRPC("github"), SubjectAuthVerify, SubjectRegistryList, SubjectCancel} {
		if !may(p.Publish.Allow, s) {
			t.Errorf("the mcp edge may not publish %s", s)
		}
	}
	for _, s := range append([]string{SubjectLLMChat, SubjectLLMModels, SubjectLLMResponses, AgentRPC("helper"), SubjectAgentList,
		SubjectRegistryCreate, SubjectRegistryDrain, SubjectAgentCreate}, AuthAdminSubjects...) {
		if may(p.Publish.Allow, s) {
			t.Errorf("the mcp edge may publish %s", s)
		}
	}
	llm := BusUser{User: "inside", Password: "edge-password-0123456789", Roles: []Role{RoleIngress}, Routes: []RouteFamily{RoutesLLM, RoutesAdmin}}
	p = llm.Permissions()
	for _, s := range append([]string{SubjectLLMChat, SubjectRegistryCreate}, AuthAdminSubjects...) {
		if !may(p.Publish.Allow, s) {
			t.Errorf("the llm,admin ingress may not publish %s", s)
		}
	}
	if may(p.Publish.Allow, SubjectRouterRPC) || may(p.Publish.Allow, AgentRPC("helper")) {
		t.Errorf("the llm,admin ingress may publish MCP or agent subjects: %v", p.Publish.Allow)
	}
	bad := BusUser{User: "w", Password: "edge-password-0123456789", Roles: []Role{RoleWorkers}, Routes: []RouteFamily{RoutesMCP}}
	if err := CheckBusUser(bad); err == nil || !strings.Contains(err.Error(), "routes applies to the ingress role only") {
		t.Errorf("routes on a workers user: %v", err)
	}
	bad = BusUser{User: "i", Password: "edge-password-0123456789", Roles: []Role{RoleIngress}, Routes: []RouteFamily{"chat"}}
	if err := CheckBusUser(bad); err == nil || !strings.Contains(err.Error(), `"chat" is not a route family`) {
		t.Errorf("routes [chat]: %v", err)
	}
}

// may reports whether a permission list allows subject.
func may(allow []string, subject string) bool {
	for _, a := range allow {
		if server.SubjectMatchesFilter(subject, a) {
			return true
		}
	}
	return false
}
