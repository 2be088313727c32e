package upstream

// The upstream GET stream of a Streamable HTTP session: opened right after
// notifications/initialized (SDK servers drop what belongs to no request
// when no GET stream is open: list_changed, resources/updated, requests for
// the client outside a call), kept open while the session is the client's
// current one, reconnected with backoff (from Last-Event-ID when the server
// numbers its events), closed with the session. A server without one answers
// 405: the client stops trying for that session.

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// GET stream reconnection backoff.
const (
	getBackoffMin = 100 * time.Millisecond
	getBackoffMax = 10 * time.Second
	getStableFor  = 30 * time.Second // a stream up this long resets the backoff
)

// listen keeps s's GET stream open until s ends.
func (c *streamableClient) listen(s *session) {
	lastID := ""
	c.keepOpen(s, "GET stream", func() (bool, error) { return c.stream(s, &lastID) })
}

// keepOpen runs open (one stream, read to its end) again and again, with
// backoff, until s ends or open says not to (again false).
func (c *streamableClient) keepOpen(s *session, what string, open func() (again bool, err error)) {
	delay := getBackoffMin
	for s.ctx.Err() == nil {
		start := time.Now()
		again, err := open()
		if !again {
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		if errors.Is(err, errListenRestart) { // listen_resources.go: reopen at once
			continue
		}
		if time.Since(start) >= getStableFor {
			delay = getBackoffMin
		}
		if err != nil {
			c.log.Debug("upstream "+what+" ended; reopening", "retry_in", delay, "err", bus.AsError(err).Detail())
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
		delay = min(delay*2, getBackoffMax)
	}
}

// stream opens the GET stream once and reads it until it ends. again is false
// when it should not be reopened (no GET stream on this server, or the
// session is gone).
func (c *streamableClient) stream(s *session, lastID *string) (again bool, err error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, c.endpoint, nil)
	if err != nil {
		return false, err
	}
	c.setHeaders(req, s)
	req.Header["Accept"] = []string{"text/event-stream"}
	if *lastID != "" {
		req.Header["Last-Event-Id"] = []string{*lastID}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return true, c.classify(s.ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusMethodNotAllowed {
		c.log.Debug("upstream has no GET stream (405)")
		return false, nil
	}
	if err := c.checkStatus(resp, s); err != nil {
		if errors.Is(err, errSessionGone) {
			c.drop(s) // the next call opens a new session, and its stream
			return false, err
		}
		return true, err
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != "text/event-stream" {
		c.log.Debug("upstream answered its GET stream with another content type; no GET stream for this session", "content_type", ct)
		return false, nil
	}
	sc := newSSEScanner(resp.Body, maxUpstreamBody)
	for {
		data, err := sc.Next()
		if id := sc.LastID(); id != "" {
			*lastID = id
		}
		if err != nil {
			if err == io.EOF {
				return true, nil
			}
			return true, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: GET stream broke: %s", c.server, bus.NetworkReason(err))
		}
		if len(data) == 0 {
			continue
		}
		var m bus.Message
		if json.Unmarshal(data, &m) != nil {
			c.log.Debug("upstream sent a malformed message on its GET stream")
			continue
		}
		switch {
		case m.IsNotification():
			c.events.SessionNotification(m.Method, m.Params)
		case m.IsRequest() && m.Method == bus.MethodPing:
			c.tasks.spawn(func() { c.answer(s, bus.ResultResponse(m.ID, json.RawMessage(`{}`))) })
		case m.IsRequest():
			c.tasks.spawn(func() { c.answer(s, c.events.ServerRequest(s.ctx, &m)) })
		}
	}
}
