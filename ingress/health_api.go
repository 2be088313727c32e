package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"
)

const (
	// healthTimeout bounds one server's probe.
	healthTimeout = 3 * time.Second
	// fanOut bounds the servers probed or listed at once for one request.
	fanOut = 8
)

// healthStatus is one server's probe result. It names the server and the
// gateway's error message (catalog messages never hold credentials).
type healthStatus struct {
	ServerID  string  `json:"server_id"`
	Status    string  `json:"status"`
	LatencyMS int64   `json:"latency_ms"`
	LastError *string `json:"last_error"`
}

// GET /v1/mcp/server/health[?server_ids=a,b][&server_id=c]: probes, for each
// server the caller may see and use (or each one named, all of which it must
// be able to see and use: restServers), a worker's info endpoint (the
// upstream's initialize result, from the worker's shared session). A caller
// that may use no server gets the error saying why, not [].
func (g *Ingress) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete { // a server named "health"
		g.serveServerByID(w, r, "health")
		return
	}
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	only := splitList(q.Get("server_ids"))
	only = append(only, splitList(q.Get("server_id"))...)
	servers, e := g.restServers(r.Context(), id, class, only)
	if e != nil {
		g.log.Info("server health refused", "request_id", requestID(r), "caller", id.Name(), "ip_class", class, "code", e.Kind.Code)
		writeRESTError(w, restRouteError(e))
		return
	}
	out := make([]healthStatus, len(servers))
	reqID := requestID(r) // once: it is set lazily, not safe to first call in parallel
	each(len(servers), func(i int) {
		if e := bus.DrainedError(servers[i]); e != nil { // no worker to ask, on purpose
			out[i] = healthStatus{ServerID: servers[i].Name, Status: "unhealthy", LastError: &e.Message}
			return
		}
		out[i] = g.probe(r.Context(), reqID+"-"+servers[i].Name, id, class, servers[i].Name)
	})
	body, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, body)
}

func (g *Ingress) probe(ctx context.Context, reqID string, id bus.Identity, class bus.IPClass, server string) healthStatus {
	st := healthStatus{ServerID: server, Status: "healthy"}
	deadline := time.Now().Add(healthTimeout)
	env := bus.Envelope{RequestID: reqID, Caller: id, IPClass: class, Servers: []string{server}, Deadline: deadline}
	ctx, cancel := context.WithDeadline(ctx, deadline.Add(250*time.Millisecond))
	defer cancel()
	start := time.Now()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.ToolInfo(server), Header: env.Header()})
	st.LatencyMS = time.Since(start).Milliseconds()
	var msg string
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		msg = "no tool worker is running for server \"" + server + "\""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		msg = "server \"" + server + "\" did not answer within " + healthTimeout.String()
	case err != nil:
		msg = "probe failed: " + bus.RequestError("tool worker", err).Message
	default:
		if e := bus.ReplyError(reply); e != nil {
			msg = e.Message
		}
	}
	if msg != "" {
		st.Status = "unhealthy"
		st.LastError = &msg
	}
	return st
}

// each runs fn(0..n-1), at most fanOut at a time, and waits for all. fn
// cannot fail (each records its own outcome by index), so the group never
// cancels: one server's failure does not stop the others.
func each(n int, fn func(i int)) {
	var g errgroup.Group
	g.SetLimit(fanOut)
	for i := range n {
		g.Go(func() error {
			fn(i)
			return nil
		})
	}
	_ = g.Wait()
}
