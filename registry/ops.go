package registry

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// The operations endpoints (bus/server_ops.go): drain and canary are edits of
// the server's record, written as an update is (checked like any write,
// compare-and-set), so every replica sees them through the servers bucket.

// drain sets or clears the record's drain flag.
func (reg *Registry) drain(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needStore(); e != nil {
		return nil, e
	}
	var in bus.DrainRequest
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, `drain: body must be {"drain": true|false}`)
	}
	if e := in.Validate(); e != nil {
		return nil, e
	}
	out, e := reg.modify(ctx, in.Name, nil, func(bus.ServerSpec) (*writeBody, *bus.Error) {
		return opsBody(in.Name, map[string]any{"drain": *in.Drain}), nil
	})
	if e == nil {
		reg.log.Info("registry: server drain set", "server", in.Name, "drain", *in.Drain)
	}
	return out, e
}

// canaryFields are the record's canary fields, all cleared by off and promote.
var canaryFields = []string{"canary_url", "canary_command", "canary_args", "canary_percent"}

// canary sets, ramps, removes or promotes the record's canary.
func (reg *Registry) canary(ctx context.Context, data []byte) (any, *bus.Error) {
	if e := reg.needStore(); e != nil {
		return nil, e
	}
	var in bus.CanaryRequest
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, bus.Errorf(bus.ErrBadRequest, `canary: body must be {"url": "...", "percent": N} (command and args for a stdio server)`)
	}
	if e := in.Validate(); e != nil {
		return nil, e
	}
	out, e := reg.modify(ctx, in.Name, nil, func(cur bus.ServerSpec) (*writeBody, *bus.Error) {
		return canaryEdit(in, cur)
	})
	if e == nil {
		reg.log.Info("registry: server canary changed", "server", in.Name, "action", in.Action)
	}
	return out, e
}

// canaryEdit is the record edit a canary request makes of cur.
func canaryEdit(in bus.CanaryRequest, cur bus.ServerSpec) (*writeBody, *bus.Error) {
	fields := map[string]any{}
	switch in.Action {
	case bus.CanarySet:
		if (in.Command != nil || in.Args != nil) && cur.Transport != "stdio" {
			return nil, bus.Errorf(bus.ErrBadRequest, "command: a canary command is for a stdio server; MCP server '%s' takes a canary url", in.Name)
		}
		if in.URL != nil {
			fields["canary_url"] = *in.URL
			fields["canary_command"], fields["canary_args"] = nil, nil
		}
		if in.Command != nil {
			fields["canary_url"], fields["canary_command"] = nil, *in.Command
		}
		if in.Args != nil {
			fields["canary_args"] = in.Args
		}
		if in.Percent != nil {
			fields["canary_percent"] = *in.Percent
		}
	case bus.CanaryOff:
		for _, f := range canaryFields {
			fields[f] = nil
		}
	case bus.CanaryPromote:
		if !cur.HasCanary() {
			return nil, bus.Errorf(bus.ErrConflict, "MCP server '%s' has no canary to promote", in.Name)
		}
		for _, f := range canaryFields {
			fields[f] = nil
		}
		if cur.Transport == "stdio" {
			fields["command"], fields["args"] = cur.CanaryCommand, cur.CanaryArgs
		} else {
			fields["url"] = cur.CanaryURL
		}
	}
	return opsBody(in.Name, fields), nil
}

// opsBody is an update body that sets fields (nil clears one).
func opsBody(name string, fields map[string]any) *writeBody {
	b := &writeBody{name: name, fields: map[string]json.RawMessage{}}
	for k, v := range fields {
		raw, _ := json.Marshal(v)
		b.fields[k] = raw
	}
	return b
}
