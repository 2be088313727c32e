// Package upstreamtest holds an in-process fake of an upstream MCP server
// over Streamable HTTP, for the tests of the upstream clients and of the
// worker: a minimal hand-written endpoint on loopback that records what it
// receives, so tests check a client's HTTP behaviour (headers, sessions, SSE,
// retries, error kinds), not MCP semantics.
package upstreamtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Version is the protocol version the fake negotiates.
const Version = "2025-06-18"

// Seen is one POST (or DELETE) the fake upstream received.
type Seen struct {
	HTTPMethod string
	Header     http.Header
	Msg        bus.Message
	Body       []byte
	Bad        bool // the body was not JSON
}

// Fake answers initialize with a new session each time and
// notifications/initialized with 202; everything else goes to call.
type Fake struct {
	Srv       *httptest.Server
	InitDelay time.Duration
	NoSession bool // behave as a sessionless server
	InitHook  func(w http.ResponseWriter, r *http.Request) bool

	// Call answers any other request; sessionID is the header the client sent.
	Call func(w http.ResponseWriter, r *http.Request, m bus.Message, sessionID string)

	Inits atomic.Int32
	mu    sync.Mutex
	log   []Seen
	// Replies receives every JSON-RPC response the client POSTs (answers to
	// server-to-client requests).
	Replies chan Seen
}

// NewFake is a Fake listening on loopback until the test ends.
func NewFake(t testing.TB) *Fake {
	f := NewUnstartedFake(t)
	f.Srv.Start()
	return f
}

// NewUnstartedFake is a Fake whose server the test configures, then starts.
func NewUnstartedFake(t testing.TB) *Fake {
	f := &Fake{Replies: make(chan Seen, 16)}
	f.Srv = httptest.NewUnstartedServer(f)
	t.Cleanup(f.Srv.Close)
	return f
}

// URL is the fake's MCP endpoint.
func (f *Fake) URL() string { return f.Srv.URL + "/mcp" }

// Requests are what the fake received, in order.
func (f *Fake) Requests() []Seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Seen(nil), f.log...)
}

// ByMethod returns the requests with JSON-RPC method m.
func (f *Fake) ByMethod(m string) []Seen {
	var out []Seen
	for _, s := range f.Requests() {
		if s.Msg.Method == m {
			out = append(out, s)
		}
	}
	return out
}

// ServeHTTP answers initialize (a new session each time, unless
// NoSession), notifications/initialized and responses itself, and the rest
// through Call.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := Seen{HTTPMethod: r.Method, Header: r.Header.Clone(), Body: body}
	if r.Method == http.MethodPost {
		s.Bad = json.Unmarshal(body, &s.Msg) != nil
	}
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
	if s.Bad {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}

	switch {
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusOK)
	case s.Msg.Method == "initialize":
		n := f.Inits.Add(1)
		if f.InitHook != nil && f.InitHook(w, r) {
			return
		}
		if f.InitDelay > 0 {
			time.Sleep(f.InitDelay) // real time: an upstream slow to initialize
		}
		if !f.NoSession {
			w.Header().Set("Mcp-Session-Id", fmt.Sprintf("sess-%d", n))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":%q,"capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}}`, s.Msg.ID, Version)
	case s.Msg.Method == "notifications/initialized":
		w.WriteHeader(http.StatusAccepted)
	case s.Msg.IsResponse():
		w.WriteHeader(http.StatusAccepted)
		f.Replies <- s
	default:
		if f.Call == nil {
			http.Error(w, "unexpected", http.StatusInternalServerError)
			return
		}
		f.Call(w, r, s.Msg, r.Header.Get("Mcp-Session-Id"))
	}
}

// WriteJSONResult answers request id with result, as JSON.
func WriteJSONResult(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, id, result)
}

// ClosedURL is an MCP endpoint URL on loopback that nothing listens on.
func ClosedURL(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr + "/mcp"
}

// AckWatch serves h, calling acked each time a response it writes carries a
// subscriptions/listen acknowledgement: from then on the server holds the
// listen and tells it of changes, which a test can wait on instead of time.
func AckWatch(h http.Handler, acked func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&ackWriter{ResponseWriter: w, acked: acked}, r)
	})
}

type ackWriter struct {
	http.ResponseWriter
	acked func()
}

func (a *ackWriter) Write(b []byte) (int, error) {
	n, err := a.ResponseWriter.Write(b)
	if bytes.Contains(b, []byte("notifications/subscriptions/acknowledged")) {
		a.Flush() // the acknowledgement reaches the client before the test goes on
		a.acked()
	}
	return n, err
}

func (a *ackWriter) Flush() {
	if f, ok := a.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
