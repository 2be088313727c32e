package ingress

import (
	"bytes"
	"context"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// masterRelay describes one master-key-only REST request that a service on
// the bus answers (the admin API: auth; the registry API: registry).
type masterRelay struct {
	// api names the API in logs ("admin", "registry"); service names the
	// service in errors ("auth service").
	api, service string
	// forbidden is the 403's message for a caller without the master key.
	forbidden string
	// logKey and logVal name the request in logs ("path", "/key/info").
	logKey, logVal string
	subject        string
	// orgAdmins lets a key that administers an organization
	// (Identity.OrgAdmin) through as well: the key, team and organization
	// routes, whose service (auth) limits it to its organization. No other
	// API sets it.
	orgAdmins bool
}

// relayAsMaster answers a request only the master key may make (and, where
// rl.orgAdmins, an organization's admin): it verifies the caller
// (restCaller), refuses anyone else, builds the body
// (after the key check, so refused callers never have theirs read), sends it
// to the service with the caller's envelope (adminTimeout) and relays the
// answer, or the service's error, as REST. Bodies are never logged: they
// hold keys and credentials.
func (g *Ingress) relayAsMaster(w http.ResponseWriter, r *http.Request, rl masterRelay, body func() ([]byte, *bus.Error)) {
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	if !id.Admin && (!rl.orgAdmins || id.OrgAdmin == "") {
		g.log.Warn(rl.api+" API refused: caller is not the master key", rl.logKey, rl.logVal, "request_id", requestID(r), "caller", id.Name(), "ip_class", class)
		writeRESTError(w, bus.Errorf(bus.ErrForbidden, "%s", rl.forbidden))
		return
	}
	data, e := body()
	if e != nil {
		writeRESTError(w, e)
		return
	}
	env := bus.Envelope{RequestID: requestID(r), Caller: id, IPClass: class}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: rl.subject, Data: data, Header: env.Header()})
	if err != nil {
		e := bus.RequestError(rl.service, err)
		g.log.Warn(rl.api+" request failed", rl.logKey, rl.logVal, "request_id", env.RequestID, "err", e.Message)
		writeRESTError(w, e)
		return
	}
	if e := bus.ReplyError(reply); e != nil {
		g.log.Info(rl.api+" request refused", rl.logKey, rl.logVal, "request_id", env.RequestID, "code", e.Kind.Code)
		writeRESTError(w, e)
		return
	}
	g.log.Info(rl.api+" request", rl.logKey, rl.logVal, "request_id", env.RequestID, "caller", id.Name())
	out := reply.Data
	if len(bytes.TrimSpace(out)) == 0 {
		out = []byte("{}")
	}
	writeJSON(w, http.StatusOK, out)
}
