package ingress

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// sseRetry is the reconnection delay the priming event of a stream tells a
// client to wait before it reconnects (SSE "retry", SEP-1699).
const sseRetry = time.Second

// sseWriter writes Server-Sent Events, flushing each one.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
	// ids, if set, prefixes the id of every event ("<ids>-<n>"), unique
	// within the session, so a client can name where it got to
	// (Last-Event-ID).
	ids string
	seq uint64
	buf []byte
}

// startSSE answers 200 with an event stream; ids may be "" for no event ids.
func startSSE(w http.ResponseWriter, ids string) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	s := &sseWriter{w: w, f: f, ids: ids}
	s.flush()
	return s
}

// primes reports whether a client speaking version understands a priming
// event (an event with an id and no data): 2025-11-25 clients do; older
// ones may try to parse the empty data, and the stateless era has no
// resumable streams, so no ids to resume from.
func primes(version string) bool { return version >= "2025-11-25" && version < bus.FirstModernVersion }

// prime writes the priming event: an id to resume from and the reconnection
// delay, with empty data.
func (s *sseWriter) prime() error {
	s.buf = s.appendID(s.buf[:0])
	s.buf = append(s.buf, "retry: "...)
	s.buf = strconv.AppendInt(s.buf, sseRetry.Milliseconds(), 10)
	s.buf = append(s.buf, "\ndata: \n\n"...)
	return s.write()
}

// event writes one event of type name. Lines of data (a JSON message may
// hold newlines between its tokens) become data lines of their own, which
// the client joins back with newlines.
func (s *sseWriter) event(name string, data []byte) error {
	s.buf = s.appendID(s.buf[:0])
	s.buf = append(s.buf, "event: "...)
	s.buf = append(s.buf, name...)
	s.buf = append(s.buf, '\n')
	for {
		line, rest, more := bytes.Cut(data, []byte{'\n'})
		s.buf = append(s.buf, "data: "...)
		s.buf = append(s.buf, bytes.TrimSuffix(line, []byte{'\r'})...)
		s.buf = append(s.buf, '\n')
		if !more {
			break
		}
		data = rest
	}
	s.buf = append(s.buf, '\n')
	return s.write()
}

// message writes a JSON-RPC message as a "message" event.
func (s *sseWriter) message(data []byte) error { return s.event("message", data) }

// comment writes an SSE comment line, which clients ignore: a keepalive.
func (s *sseWriter) comment(text string) error {
	s.buf = append(append(append(s.buf[:0], ": "...), text...), "\n\n"...)
	return s.write()
}

func (s *sseWriter) appendID(b []byte) []byte {
	if s.ids == "" {
		return b
	}
	s.seq++
	b = append(b, "id: "...)
	b = append(b, s.ids...)
	b = append(b, '-')
	b = strconv.AppendUint(b, s.seq, 10)
	return append(b, '\n')
}

func (s *sseWriter) write() error {
	_, err := s.w.Write(s.buf)
	s.flush()
	return err
}

func (s *sseWriter) flush() {
	if s.f != nil {
		s.f.Flush()
	}
}
