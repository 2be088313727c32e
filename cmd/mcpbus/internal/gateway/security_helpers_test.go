package gateway

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sseStream is an open server-to-client stream read event by event.
type sseStream struct {
	body   io.ReadCloser
	events chan sseEvent
}

type sseEvent struct{ name, data string }

func (s *sseStream) Close() { s.body.Close() }

// next returns the next event, or ok false when none comes within d.
func (s *sseStream) next(d time.Duration) (sseEvent, bool) {
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(d):
		return sseEvent{}, false
	}
}

// openSSE sends GET url with header and returns the open stream, or the
// HTTP status when the gateway did not open one.
func openSSE(t *testing.T, url string, header http.Header) (*sseStream, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		recordBody(body)
		return nil, resp.StatusCode
	}
	s := &sseStream{body: resp.Body, events: make(chan sseEvent, 64)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" || ev.name != "" {
					recordBody([]byte(ev.data))
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event:"):
				ev.name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				ev.data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			}
		}
	}()
	t.Cleanup(s.Close)
	return s, http.StatusOK
}

// openLegacyStream opens a legacy HTTP+SSE session (GET /sse...) and returns
// its stream and session id, read from the endpoint event.
func openLegacyStream(t *testing.T, url string, header http.Header) (*sseStream, string) {
	t.Helper()
	s, status := openSSE(t, url, header)
	if s == nil {
		t.Fatalf("GET %s: HTTP %d", url, status)
	}
	ev, ok := s.next(10 * time.Second)
	if !ok || ev.name != "endpoint" {
		t.Fatalf("GET %s: no endpoint event (%+v)", url, ev)
	}
	_, sid, found := strings.Cut(ev.data, "session_id=")
	if !found {
		t.Fatalf("endpoint event %q names no session", ev.data)
	}
	return s, sid
}
