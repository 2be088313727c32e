package ingress

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mcpbus/mcpbus/bus"
)

// writeError is the one place a gateway error becomes an HTTP answer: the status
// from the error catalog and a JSON-RPC error body naming what was wrong.
func writeError(w http.ResponseWriter, id json.RawMessage, e *bus.Error) {
	switch e.Kind {
	case bus.ErrUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="mcpbus"`)
	case bus.ErrMethodNotAllowed:
		w.Header().Set("Allow", "POST, DELETE")
	}
	writeJSON(w, e.Kind.HTTP, bus.ErrorResponse(id, e))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// sseWriter writes Server-Sent Events, flushing each one.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	s := &sseWriter{w: w, f: f}
	s.flush()
	return s
}

func (s *sseWriter) event(data []byte) {
	_, _ = s.w.Write([]byte("event: message\ndata: "))
	_, _ = s.w.Write(data)
	_, _ = s.w.Write([]byte("\n\n"))
	s.flush()
}

func (s *sseWriter) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}
