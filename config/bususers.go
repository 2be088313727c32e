package config

import (
	"fmt"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// readBusUsers reads general_settings.mcp_bus_users: the users of the
// embedded NATS server for processes other than `serve` itself (split
// services, `mcpbus worker`, `mcpbus usage`, dashboards), each with the roles
// whose subjects it may use (bus/natsauth.go):
//
//	mcp_bus_users:
//	  - user: worker-eu
//	    password: os.environ/MCPBUS_WORKER_EU_PASSWORD
//	    roles: [workers]
//	    servers: [github]        # workers only: the servers it may serve
//	  - user: edge
//	    password: os.environ/MCPBUS_EDGE_PASSWORD
//	    roles: [ingress]
//	    routes: [mcp]            # ingress only: the route families' subjects
//
// Passwords are never quoted in errors.
func readBusUsers(p *problems, path string, n *yaml.Node, env LookupEnv) []bus.BusUser {
	if isNull(n) {
		return nil
	}
	dn := deref(n)
	if dn.Kind != yaml.SequenceNode {
		p.errorf(path, "must be a list of users (user, password, roles, servers)")
		return nil
	}
	var out []bus.BusUser
	seen := map[string]bool{}
	for i, item := range dn.Content {
		ip := fmt.Sprintf("%s[%d]", path, i)
		if !isMapping(item) {
			p.errorf(ip, "must be a mapping with user, password and roles")
			continue
		}
		var u bus.BusUser
		ok := true
		for _, kv := range pairs(item) {
			fp := ip + "." + kv.key
			switch kv.key {
			case "user":
				u.User, _ = p.str(fp, kv.val)
			case "password":
				s, _ := p.str(fp, kv.val)
				v, ferr := resolve(fp, s, env)
				if ferr != nil {
					p.add(*ferr)
					ok = false
				}
				u.Password = v
			case "roles":
				for _, r := range p.strList(fp, kv.val) {
					u.Roles = append(u.Roles, bus.Role(r))
				}
			case "servers":
				u.Servers = p.strList(fp, kv.val)
			case "routes":
				u.Routes = readRouteFamilies(p, fp, kv.val, env)
				if u.Routes == nil {
					u.Routes = []bus.RouteFamily{}
				}
			default:
				p.errorf(fp, "unknown field (a bus user has user, password, roles, servers and routes)")
				ok = false
			}
		}
		if !ok {
			continue
		}
		if err := bus.CheckBusUser(u); err != nil {
			p.errorf(ip, err.Error())
			continue
		}
		if seen[u.User] {
			p.errorf(ip+".user", fmt.Sprintf("%q is listed twice", u.User))
			continue
		}
		seen[u.User] = true
		out = append(out, u)
	}
	return out
}
