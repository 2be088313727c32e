package ingress

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// DefaultBodyReadTimeout bounds reading one request body once its headers
// are in (Options.BodyReadTimeout): a client that trickles a body holds its
// connection and its buffer no longer than this. 4 MiB in 30 s is 140 KB/s.
const DefaultBodyReadTimeout = 30 * time.Second

// readBody reads r's body: at most limit bytes (TOO_LARGE), within the body
// read timeout (REQUEST_TIMEOUT). Every handler that reads a body does so
// through it, and only after the caller's key was checked, so a caller
// without a key costs no read at all.
func (g *Ingress) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *bus.Error) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(g.o.BodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	_ = rc.SetReadDeadline(time.Time{})
	if err == nil {
		return body, nil
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, bus.Errorf(bus.ErrTooLarge, "request body larger than %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, bus.Errorf(bus.ErrRequestTimeout, "the request body did not arrive within %s", g.o.BodyReadTimeout)
	}
	return nil, bus.Errorf(bus.ErrBadRequest, "reading the request body failed")
}
