package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// The admin REST API: LiteLLM's key, team and organization endpoints,
// answered by the auth service on the bus. The ingress only checks that the
// caller holds the master key or administers an organization (auth limits
// the latter to its organization), turns the request into the JSON body of
// the subject of the same name (bus/admin_api.go and bus/orgs.go declare
// them) and relays the answer (relayAsMaster, relay.go). Bodies are never
// logged: they hold keys.
const (
	adminMaxBody = 1 << 20
	adminTimeout = 5 * time.Second
	// adminForbidden refuses a key that is neither the master key nor an
	// organization's admin.
	adminForbidden = "only the master key (or an org_admin's key, within its organization) may manage keys, teams and organizations"
)

// adminRoute is one endpoint: its method, bus subject, and for GET the query
// parameters that become the body's fields (required ones must be present).
type adminRoute struct {
	path     string
	method   string
	subject  string
	query    []string
	required string
}

var adminRoutes = []adminRoute{
	{path: "/key/generate", method: http.MethodPost, subject: bus.SubjectKeyGenerate},
	{path: "/key/info", method: http.MethodGet, subject: bus.SubjectKeyInfo, query: []string{"key"}, required: "key"},
	{path: "/key/list", method: http.MethodGet, subject: bus.SubjectKeyList, query: []string{"team_id", "return_full_object"}},
	{path: "/key/update", method: http.MethodPost, subject: bus.SubjectKeyUpdate},
	{path: "/key/delete", method: http.MethodPost, subject: bus.SubjectKeyDelete},
	{path: "/team/new", method: http.MethodPost, subject: bus.SubjectTeamNew},
	{path: "/team/info", method: http.MethodGet, subject: bus.SubjectTeamInfo, query: []string{"team_id"}, required: "team_id"},
	{path: "/team/list", method: http.MethodGet, subject: bus.SubjectTeamList},
	{path: "/team/update", method: http.MethodPost, subject: bus.SubjectTeamUpdate},
	{path: "/team/delete", method: http.MethodPost, subject: bus.SubjectTeamDelete},
	// LiteLLM's methods: PATCH for update, DELETE (with a body) to delete.
	{path: "/organization/new", method: http.MethodPost, subject: bus.SubjectOrgNew},
	{path: "/organization/info", method: http.MethodGet, subject: bus.SubjectOrgInfo, query: []string{"organization_id"}, required: "organization_id"},
	{path: "/organization/list", method: http.MethodGet, subject: bus.SubjectOrgList},
	{path: "/organization/update", method: http.MethodPatch, subject: bus.SubjectOrgUpdate},
	{path: "/organization/delete", method: http.MethodDelete, subject: bus.SubjectOrgDelete},
	{path: "/organization/member_add", method: http.MethodPost, subject: bus.SubjectOrgMemberAdd},
	{path: "/organization/member_delete", method: http.MethodDelete, subject: bus.SubjectOrgMemberDelete},
}

// adminRoutes registers the endpoints. Each path is registered for every
// method, so a wrong method gets a 405 in the same error shape as the rest.
func (g *Ingress) adminRoutes(mux *http.ServeMux) {
	for _, rt := range adminRoutes {
		mux.HandleFunc(rt.path, func(w http.ResponseWriter, r *http.Request) { g.serveAdmin(w, r, rt) })
	}
}

func (g *Ingress) serveAdmin(w http.ResponseWriter, r *http.Request, rt adminRoute) {
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use %s", r.Method, rt.path, rt.method))
		return
	}
	g.relayAsMaster(w, r, masterRelay{api: "admin", service: "auth service", forbidden: adminForbidden,
		logKey: "path", logVal: rt.path, subject: rt.subject, orgAdmins: true}, func() ([]byte, *bus.Error) {
		if rt.method == http.MethodGet {
			return queryBody(r, rt)
		}
		return g.readAdminBody(w, r)
	})
}

// queryBody builds a GET endpoint's JSON body from its query parameters.
func queryBody(r *http.Request, rt adminRoute) ([]byte, *bus.Error) {
	q := r.URL.Query()
	obj := map[string]string{}
	for _, name := range rt.query {
		if v := strings.TrimSpace(q.Get(name)); v != "" {
			obj[name] = v
		}
	}
	if rt.required != "" && obj[rt.required] == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "query parameter %s is required: %s?%s=...", rt.required, rt.path, rt.required)
	}
	body, _ := json.Marshal(obj)
	return body, nil
}

// readAdminBody reads a POST body: one JSON object of at most adminMaxBody
// bytes. An empty body stands for {} (e.g. /key/generate with every default).
func (g *Ingress) readAdminBody(w http.ResponseWriter, r *http.Request) ([]byte, *bus.Error) {
	body, e := g.readBody(w, r, adminMaxBody)
	if e != nil {
		return nil, e
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return []byte("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		// The messages of encoding/json describe the syntax (a character, an
		// offset) or a type, never a whole value, so they may be shown.
		var syn *json.SyntaxError
		switch {
		case errors.As(err, &syn):
			return nil, bus.Errorf(bus.ErrBadRequest, "request body is not valid JSON: %v (at byte %d)", err, syn.Offset)
		default:
			return nil, bus.Errorf(bus.ErrBadRequest, "request body must be a JSON object")
		}
	}
	if obj == nil { // the body was null
		return nil, bus.Errorf(bus.ErrBadRequest, "request body must be a JSON object")
	}
	return body, nil
}
