package registry

import (
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Start registers the registry micro service, answering get and list from cache.
// Every answer is redacted: credentials never leave the registry on the bus.
func Start(nc *nats.Conn, cache *bus.ServerCache, version string) (micro.Service, error) {
	if version == "" {
		version = "0.1.0"
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceRegistry,
		Version:     version,
		Description: "upstream MCP server registry",
	})
	if err != nil {
		return nil, err
	}
	err = svc.AddEndpoint("get", micro.HandlerFunc(func(req micro.Request) {
		var in bus.LookupRequest
		if err := json.Unmarshal(req.Data(), &in); err != nil || in.Name == "" {
			bus.RespondError(req, bus.Errorf(bus.ErrBadRequest, `registry get: body must be {"name": "<server>"}`))
			return
		}
		s, ok := cache.Get(in.Name)
		if !ok {
			bus.RespondError(req, bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", in.Name))
			return
		}
		_ = req.RespondJSON(s.Redacted())
	}), micro.WithEndpointSubject(bus.SubjectRegistryGet))
	if err != nil {
		return nil, err
	}
	err = svc.AddEndpoint("list", micro.HandlerFunc(func(req micro.Request) {
		list := cache.List()
		out := make([]bus.ServerSpec, len(list))
		for i, s := range list {
			out[i] = s.Redacted()
		}
		_ = req.RespondJSON(out)
	}), micro.WithEndpointSubject(bus.SubjectRegistryList))
	if err != nil {
		return nil, err
	}
	return svc, nil
}
