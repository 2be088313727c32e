package fakellm

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// maxBody bounds a request body.
const maxBody = 4 << 20

// Server is the fake provider. With APIKey set, every request must carry
// it the way its wire does (OpenAI: Authorization: Bearer; Azure: api-key;
// Anthropic: x-api-key, or Bearer as its 2026 SDKs send it).
type Server struct {
	APIKey string

	seq   atomic.Int64
	mu    sync.Mutex
	calls map[string]int
}

// Calls reports how many requests reached model (errors included).
func (s *Server) Calls(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[model]
}

func (s *Server) count(model string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[model]++
}

// ServeHTTP routes the three wires.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && path == "/v1/chat/completions":
		if s.keyed(w, r, bearer(r)) {
			s.chatCompletions(w, r, "")
		}
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/openai/deployments/") && strings.HasSuffix(path, "/chat/completions"):
		dep := strings.TrimSuffix(strings.TrimPrefix(path, "/openai/deployments/"), "/chat/completions")
		if r.URL.Query().Get("api-version") == "" || dep == "" || strings.Contains(dep, "/") {
			writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]any{"code": "404", "message": "Resource not found"}})
			return
		}
		if s.keyed(w, r, r.Header.Get("Api-Key")) {
			s.chatCompletions(w, r, dep)
		}
	case r.Method == http.MethodPost && path == "/v1/embeddings":
		if s.keyed(w, r, bearer(r)) {
			s.embeddings(w, r)
		}
	case r.Method == http.MethodGet && path == "/v1/models":
		if s.keyed(w, r, bearer(r)) {
			s.models(w, r)
		}
	case r.Method == http.MethodPost && path == "/v1/messages":
		key := r.Header.Get("X-Api-Key")
		if key == "" {
			key = bearer(r)
		}
		if s.APIKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.APIKey)) != 1 {
			anthropicError(w, &providerError{status: 401, kind: "authentication_error", message: "invalid x-api-key"})
			return
		}
		s.messages(w, r)
	default:
		http.NotFound(w, r)
	}
}

// keyed checks an OpenAI-wire key, answering 401 as OpenAI does.
func (s *Server) keyed(w http.ResponseWriter, _ *http.Request, got string) bool {
	if s.APIKey == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.APIKey)) == 1 {
		return true
	}
	openaiError(w, &providerError{status: 401, kind: "invalid_request_error", message: "Incorrect API key provided."})
	return false
}

func bearer(r *http.Request) string {
	v, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return v
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// sseWriter writes server-sent events, flushing each.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sseWriter {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: w, f: f}
}

func (s *sseWriter) raw(data string) {
	fmt.Fprintf(s.w, "data: %s\n\n", data)
	if s.f != nil {
		s.f.Flush()
	}
}

func (s *sseWriter) data(v any) {
	b, _ := json.Marshal(v)
	s.raw(string(b))
}

func (s *sseWriter) event(name string, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	if s.f != nil {
		s.f.Flush()
	}
}
