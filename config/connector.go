package config

import (
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// TransportConnector marks a server that a connector (`mcpbus connector`)
// serves from outside the cluster: the gateway's record holds its policy
// (visibility, access groups, tools, timeout, cost), and the connector's
// own config file holds how to reach it, credentials included, which never
// enter the gateway's bucket.
const TransportConnector = "connector"

// connectorKept are the fields a connector server's record may set: what
// the gateway decides. Every other field is the connector's to know.
var connectorKept = map[string]bool{
	"server_name": true, "alias": true, "description": true, "transport": true,
	"allowed_tools": true, "disallowed_tools": true, "available_on_public_internet": true,
	"access_groups": true, "timeout": true, "cost_per_query": true, "extra_headers": true,
	"max_concurrent_requests": true, "max_queued_requests": true,
	"circuit_breaker_threshold": true, "circuit_breaker_cooldown": true,
	// Per-upstream operations the gateway runs: a drain stops the
	// connector's worker like any other. A canary names another URL or
	// command, which is the connector's to know: not for these servers.
	"drain": true,
}

// provisionConnector checks the record of a server a connector serves: no
// URL, command or credential (they belong on the connector's machine), and
// the policy fields as for any server (c holds them checked, errs what was
// wrong so far). Its Upstream has no way to dial the server: the cluster's
// workers leave it to its connector.
func provisionConnector(base string, c checked, r, spec bus.ServerSpec, errs Errors) (*Upstream, error) {
	for _, f := range bus.ServerFields {
		if !connectorKept[f.Name] && f.IsSet(&spec) {
			errs = append(errs, FieldError{base + "." + f.Name, "is the connector's to know: a server with transport connector keeps its url, command and credentials in the connector's own config file, out of the gateway"})
		}
	}
	// How to reach it is checked by the connector; the rules for the rest apply.
	c.URL, c.Transport, c.AuthType = "https://connector.invalid", "http", "none"
	if len(errs) == 0 {
		errs = validate(base, &c, false)
	}
	costs, costErrs := checkCosts(base, spec.CostPerQuery)
	if errs = append(errs, costErrs...); len(errs) > 0 {
		return nil, sortErrors(base, errs)
	}
	up := upstream(c, r, spec)
	up.URL, up.Transport, up.CostPerQuery = nil, TransportConnector, costs
	for _, h := range c.ExtraHeaders {
		up.ExtraHeaders = append(up.ExtraHeaders, http.CanonicalHeaderKey(h))
	}
	return up, nil
}

// ConnectorSpec is the spec a connector's worker runs: the gateway's
// record (central) for what the gateway decides (connectorKept: visibility,
// access groups, tools, timeout, cost), and the connector's own config
// (local) for how to reach the server.
func ConnectorSpec(central, local bus.ServerSpec) bus.ServerSpec {
	out := local
	for _, f := range bus.ServerFields {
		if connectorKept[f.Name] && f.Name != "transport" {
			f.Copy(&out, &central)
		}
	}
	return out
}

// ConnectorIgnored names the fields of a connector's own server that the
// gateway's record decides, so setting them there has no effect.
func ConnectorIgnored(local bus.ServerSpec) []string {
	var out []string
	for _, f := range bus.ServerFields {
		if connectorKept[f.Name] && f.Name != "transport" && f.Name != "server_name" && f.Name != "description" && f.IsSet(&local) {
			out = append(out, f.Name)
		}
	}
	return out
}
