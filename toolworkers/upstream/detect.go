package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
)

// Transport detection for a server whose config gives no transport (LiteLLM
// users leave it out; its docs default to SSE), as the MCP specification's
// backwards-compatibility section describes: POST an initialize to the URL
// (Streamable HTTP); if the server refuses it with 400, 404 or 405, it is an
// HTTP+SSE server, reached with a GET on the same URL. What is found is
// logged, and kept for the worker's life.

// detectingClient is an upstream that picks its transport on first use.
type detectingClient struct {
	server string
	log    *slog.Logger
	http   func() Client // a Streamable HTTP client
	sse    func() Client // an HTTP+SSE client
	// found is the worker's: what one of its clients detected, every other
	// (per-credential, private) client of the server takes.
	found *Detected

	mu  sync.Mutex             // held while detecting: first calls wait for one detection
	cur atomic.Pointer[Client] // the detected transport's client; read without the lock
}

// Detected is the transport a worker found for its server ("" not yet).
type Detected struct {
	mu        sync.Mutex
	transport string
}

func (f *Detected) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transport
}

// set records t, reporting whether it is news (so it is logged once).
func (f *Detected) set(t string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	news := f.transport != t
	f.transport = t
	return news
}

var _ Client = (*detectingClient)(nil)

// pick returns the client of the detected transport, detecting it first.
func (d *detectingClient) pick(ctx context.Context) (Client, error) {
	if u := d.cur.Load(); u != nil {
		return *u, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.cur.Load(); u != nil {
		return *u, nil
	}
	use := func(u Client) (Client, error) {
		d.cur.Store(&u)
		return u, nil
	}
	switch d.found.get() {
	case "http":
		return use(d.http())
	case "sse":
		return use(d.sse())
	}
	h := d.http()
	_, err := h.Info(ctx)
	var se *statusError
	if err == nil {
		if d.found.set("http") {
			d.log.Info("upstream transport detected (no transport configured)", "server", d.server, "transport", "http")
		}
		return use(h)
	}
	h.Close()
	if !errors.As(err, &se) || (se.code != http.StatusBadRequest && se.code != http.StatusNotFound && se.code != http.StatusMethodNotAllowed) {
		return nil, err // not a refusal of the transport: detect again on the next call
	}
	s := d.sse()
	if _, serr := s.Info(ctx); serr != nil {
		s.Close()
		return nil, bus.Errorf(bus.ErrUpstreamProtocol,
			"upstream server %q: no transport was configured and it speaks neither: Streamable HTTP answered HTTP %d, HTTP+SSE: %s",
			d.server, se.code, bus.AsError(serr).Message)
	}
	if d.found.set("sse") {
		d.log.Info("upstream transport detected (no transport configured): Streamable HTTP refused, HTTP+SSE answered; set transport: sse to skip the probe",
			"server", d.server, "transport", "sse", "http_status", se.code)
	}
	return use(s)
}

func (d *detectingClient) Call(ctx context.Context, method string, params json.RawMessage, r Relay) (*bus.Message, error) {
	u, err := d.pick(ctx)
	if err != nil {
		return nil, err
	}
	return u.Call(ctx, method, params, r)
}

func (d *detectingClient) Notify(ctx context.Context, method string, params json.RawMessage) error {
	u, err := d.pick(ctx)
	if err != nil {
		return err
	}
	return u.Notify(ctx, method, params)
}

func (d *detectingClient) Info(ctx context.Context) (json.RawMessage, error) {
	u, err := d.pick(ctx)
	if err != nil {
		return nil, err
	}
	return u.Info(ctx)
}

// current is the client of the detected transport, nil before detection.
func (d *detectingClient) current() Client {
	if u := d.cur.Load(); u != nil {
		return *u
	}
	return nil
}

func (d *detectingClient) Close() {
	d.mu.Lock() // not while a detection is under way
	defer d.mu.Unlock()
	if u := d.cur.Load(); u != nil {
		(*u).Close()
	}
}
