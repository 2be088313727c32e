// Package adminhttp serves one mcpbus process's metrics and health on a
// listener of its own (serve --admin-listen, worker --admin-listen), so a
// process without the HTTP ingress (a split service, a tool worker) can be
// scraped and probed: /metrics, /health/liveliness and /health/readiness.
package adminhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures Start.
type Options struct {
	// Addr is host:port (port 0 picks one).
	Addr     string
	Gatherer prometheus.Gatherer
	// Conns are the process's bus connections, read at each probe.
	Conns func() []*nats.Conn
	Log   *slog.Logger
	// Hub, if set, replaces the JetStream check: a connector depends on its
	// leaf link to the hub, and JetStream's API does not cross that link.
	Hub func() error
}

// Server is a running admin listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
	o   Options

	mu        sync.Mutex
	checkedAt time.Time
	jsErr     error
}

// jsCheckEvery bounds how often readiness asks JetStream (probes may come
// often; the answer is reused for this long).
const jsCheckEvery = time.Second

// Start listens on o.Addr and serves until Close.
func Start(o Options) (*Server, error) {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", o.Addr, err)
	}
	s := &Server{ln: ln, o: o}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health/liveliness", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, `"I'm alive!"`)
	})
	mux.HandleFunc("GET /health/readiness", s.readiness)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, `{"error":{"message":"no route `+strings.ReplaceAll(r.URL.Path, `"`, "")+` on the admin listener: /metrics, /health/liveliness, /health/readiness","code":"MCPBUS_NOT_FOUND"}}`)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && o.Log != nil {
			o.Log.Error("admin listener stopped", "err", err)
		}
	}()
	return s, nil
}

// URL is the listener's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the listener.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// readiness is 200 while every bus connection is connected and JetStream
// answers (the buckets and streams live there), else 503 naming what failed.
func (s *Server) readiness(w http.ResponseWriter, _ *http.Request) {
	type report struct {
		Status    string            `json:"status"`
		NATS      map[string]string `json:"nats"`
		JetStream string            `json:"jetstream,omitempty"`
		Hub       string            `json:"hub,omitempty"`
		Failed    []string          `json:"failed,omitempty"`
	}
	rep := report{Status: "healthy", NATS: map[string]string{}}
	var first *nats.Conn
	for _, nc := range s.o.Conns() {
		name := nc.Opts.Name
		st := nc.Status()
		rep.NATS[name] = strings.ToLower(st.String())
		if st != nats.CONNECTED {
			rep.Failed = append(rep.Failed, "nats "+name)
		} else if first == nil {
			first = nc
		}
	}
	if len(rep.NATS) == 0 {
		rep.Failed = append(rep.Failed, "nats: no connection")
	}
	switch {
	case s.o.Hub != nil:
		rep.Hub = "ok"
		if err := s.o.Hub(); err != nil {
			rep.Hub = err.Error()
			rep.Failed = append(rep.Failed, "hub")
		}
	default:
		rep.JetStream = "ok"
		if err := s.jetStream(first); err != nil {
			rep.JetStream = err.Error()
			rep.Failed = append(rep.Failed, "jetstream")
		}
	}
	code := http.StatusOK
	if len(rep.Failed) > 0 {
		rep.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(rep)
	writeJSON(w, code, string(b))
}

// jetStream asks JetStream for its account info ($JS.API.INFO, which every
// bus role may), at most once per jsCheckEvery.
func (s *Server) jetStream(nc *nats.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.checkedAt) < jsCheckEvery {
		return s.jsErr
	}
	s.checkedAt = time.Now()
	if nc == nil {
		s.jsErr = errors.New("unavailable: no connected bus connection")
		return s.jsErr
	}
	reply, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
	switch {
	case err != nil:
		s.jsErr = fmt.Errorf("unavailable: %v", err)
	case reply.Header.Get("Status") == "503":
		s.jsErr = errors.New("unavailable: no JetStream")
	default:
		var info struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		_ = json.Unmarshal(reply.Data, &info)
		s.jsErr = nil
		if info.Error != nil {
			s.jsErr = errors.New("unavailable: " + info.Error.Description)
		}
	}
	return s.jsErr
}

func writeJSON(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
