package ingress

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// writeError is the one place a gateway error becomes an HTTP answer: the status
// from the error catalog and a JSON-RPC error body naming what was wrong.
func writeError(w http.ResponseWriter, id json.RawMessage, e *bus.Error) {
	writeErrorFor(w, id, e, false)
}

// writeErrorFor is writeError for a client of the era modern says: a
// stateless-era client gets its era's code and status (bus/era_errors.go).
func writeErrorFor(w http.ResponseWriter, id json.RawMessage, e *bus.Error, modern bool) {
	errorHeaders(w.Header(), e)
	if e.Kind == bus.ErrMethodNotAllowed && w.Header().Get("Allow") == "" {
		w.Header().Set("Allow", "GET, POST, DELETE")
	}
	writeJSON(w, e.Status(modern), bus.ErrorResponseFor(id, e, modern))
}

// errorHeaders sets the headers an error kind implies, for every endpoint.
func errorHeaders(h http.Header, e *bus.Error) {
	switch e.Kind {
	case bus.ErrUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="mcpbus"`)
	case bus.ErrRateLimited:
		h.Set("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
}

// retryAfterSeconds is d in whole seconds, rounded up, at least 1: a client
// told "0" would retry at once.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// restError is LiteLLM's error body: {"error": {"message", "type", "param", "code"}}.
type restError struct {
	Error restErrorObject `json:"error"`
}

type restErrorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// writeRESTError answers a REST (admin) request with e in LiteLLM's error
// shape: code is the catalog code, type its lower-case name ("forbidden").
func writeRESTError(w http.ResponseWriter, e *bus.Error) {
	errorHeaders(w.Header(), e)
	body, _ := json.Marshal(restError{restErrorObject{
		Message: e.Message,
		Type:    strings.ToLower(strings.TrimPrefix(e.Kind.Code, "MCPBUS_")),
		Code:    e.Kind.Code,
	}})
	writeJSON(w, restStatus(e), body)
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
