package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Per-upstream operations (bus/server_ops.go), master key only, relayed to
// the registry like the rest of /v1/mcp/server:
//
//	POST   /v1/mcp/server/{id}/drain           {"drain": true|false}
//	POST   /v1/mcp/server/{id}/canary          {"url": "...", "percent": N}
//	                                           (stdio: {"command", "args", "percent"})
//	DELETE /v1/mcp/server/{id}/canary          abort: stable takes every call
//	POST   /v1/mcp/server/{id}/canary/promote  the canary becomes the server's url
//
// Each answers the changed record (redacted, as GET /v1/mcp/server/{id}).

func (g *Ingress) serverOpsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server/{id}/drain", g.serveDrain)
	mux.HandleFunc("/v1/mcp/server/{id}/canary", g.serveCanary)
	mux.HandleFunc("/v1/mcp/server/{id}/canary/promote", g.serveCanaryPromote)
}

func (g *Ingress) serveDrain(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodPost) {
		return
	}
	g.registryAdmin(w, r, "drain", bus.SubjectRegistryDrain, func() ([]byte, *bus.Error) {
		var in bus.DrainRequest
		if e := g.readOpsBody(w, r, &in, `{"drain": true|false}`); e != nil {
			return nil, e
		}
		in.Name = r.PathValue("id")
		return marshalValid(in, in.Validate())
	})
}

func (g *Ingress) serveCanary(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodPost, http.MethodDelete) {
		return
	}
	g.registryAdmin(w, r, "canary", bus.SubjectRegistryCanary, func() ([]byte, *bus.Error) {
		in := bus.CanaryRequest{Action: bus.CanaryOff}
		if r.Method == http.MethodPost {
			if e := g.readOpsBody(w, r, &in, `{"url": "...", "percent": N}`); e != nil {
				return nil, e
			}
			in.Action = bus.CanarySet
		}
		in.Name = r.PathValue("id")
		return marshalValid(in, in.Validate())
	})
}

func (g *Ingress) serveCanaryPromote(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodPost) {
		return
	}
	g.registryAdmin(w, r, "canary promote", bus.SubjectRegistryCanary, func() ([]byte, *bus.Error) {
		in := bus.CanaryRequest{Name: r.PathValue("id"), Action: bus.CanaryPromote}
		return marshalValid(in, in.Validate())
	})
}

// readOpsBody reads an operations body into v: a JSON object of v's fields
// only (a misspelt field is named, not ignored: an operator's "precent"
// must not quietly do nothing).
func (g *Ingress) readOpsBody(w http.ResponseWriter, r *http.Request, v any, shape string) *bus.Error {
	body, e := g.readAdminBody(w, r)
	if e != nil {
		return e
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		msg := err.Error()
		switch {
		case errors.As(err, &te) && te.Field != "":
			return bus.Errorf(bus.ErrBadRequest, "%s: expected %s, got a JSON %s; the body is %s", te.Field, te.Type.String(), te.Value, shape)
		case strings.HasPrefix(msg, "json: unknown field "):
			return bus.Errorf(bus.ErrBadRequest, "%s: not a field of this request; the body is %s", strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), shape)
		}
		return bus.Errorf(bus.ErrBadRequest, "the body must be %s", shape)
	}
	return nil
}

// marshalValid encodes v unless its check failed.
func marshalValid(v any, e *bus.Error) ([]byte, *bus.Error) {
	if e != nil {
		return nil, e
	}
	b, _ := json.Marshal(v)
	return b, nil
}
