package upstream

// The upstream subscriptions/listen of a stateless-era server (MCP
// 2026-07-28): what the GET stream is to a session, for a server without
// one (and, with listen_resources.go, what resources/subscribe was). While the client knows the server as modern and someone takes what
// comes outside calls (Events), it keeps one listen open for the list
// changes the server declares (capabilities.<kind>.listChanged), reopened
// with the GET stream's backoff, and hands each change to Events as a
// session-wide notification, so the worker's caches and every client of
// the server hear of it as they hear of a session server's.

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
)

// listKinds are the listen flags and the capability each needs.
var listKinds = []struct{ flag, capability string }{
	{"toolsListChanged", "tools"},
	{"promptsListChanged", "prompts"},
	{"resourcesListChanged", "resources"},
}

// listenFlags are the notifications to ask for: every list the server says
// changes (info, initialize's shape, from discoverInfo); nil for none.
func listenFlags(info json.RawMessage) map[string]bool {
	var i struct {
		Capabilities map[string]struct {
			ListChanged bool `json:"listChanged"`
		} `json:"capabilities"`
	}
	if json.Unmarshal(info, &i) != nil {
		return nil
	}
	flags := map[string]bool{}
	for _, k := range listKinds {
		if i.Capabilities[k.capability].ListChanged {
			flags[k.flag] = true
		}
	}
	if len(flags) == 0 {
		return nil
	}
	return flags
}

// subscribe opens the listen once and reads it until it ends. again is
// false when it should not be reopened: the server refused it (a JSON-RPC
// error, another content type). With nothing to ask for (no list the server
// says changes, no resource subscribed) it waits for a subscription.
func (c *streamableClient) subscribe(s *session, flags map[string]bool) (again bool, err error) {
	notifications := map[string]any{}
	for k := range flags {
		notifications[k] = true
	}
	wake := c.res.changed()
	uris, gen, ctx := c.res.open(s.ctx) // listen_resources.go: a change ends ctx
	if len(uris) > 0 {
		notifications["resourceSubscriptions"] = uris
	}
	if len(notifications) == 0 {
		select {
		case <-wake:
			return true, errListenRestart
		case <-s.ctx.Done():
			return false, nil
		}
	}
	id := c.nextID.Add(1)
	p, _ := json.Marshal(map[string]any{"notifications": notifications})
	params := c.modernParams(ctx, p)
	body := encodeRequest(id, bus.MethodSubscriptionsListen, params)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	c.setHeaders(req, s)
	for k, v := range modernHeaders(bus.MethodSubscriptionsListen, params) {
		req.Header[k] = v
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Accept"] = []string{"application/json, text/event-stream"} // servers want both on a POST
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			return true, errListenRestart
		}
		return true, c.classify(s.ctx, err)
	}
	defer resp.Body.Close()
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		c.log.Info("upstream refused subscriptions/listen; its list changes and resource updates will not be heard", "server", c.server, "http_status", resp.StatusCode, "content_type", ct)
		c.res.ack(gen, nil, true)
		return false, nil
	}
	sc := newSSEScanner(resp.Body, maxUpstreamBody)
	acked := false
	for {
		data, err := sc.Next()
		if err != nil {
			switch {
			case ctx.Err() != nil && s.ctx.Err() == nil:
				return true, errListenRestart
			case err == io.EOF:
				return true, nil
			}
			return true, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: subscriptions/listen broke: %s", c.server, bus.NetworkReason(err))
		}
		var m bus.Message
		if len(data) == 0 || json.Unmarshal(data, &m) != nil {
			continue
		}
		switch {
		case m.IsResponse():
			if !acked { // refused before agreeing to anything: say so to who waits
				c.res.ack(gen, nil, false)
			}
			return true, nil // the server ended it (gracefully, or with an error): listen again
		case m.Method == "notifications/subscriptions/acknowledged":
			var a struct {
				Notifications struct {
					ResourceSubscriptions []string `json:"resourceSubscriptions"`
				} `json:"notifications"`
			}
			_ = json.Unmarshal(m.Params, &a)
			c.res.ack(gen, a.Notifications.ResourceSubscriptions, false)
			acked = true
		case m.Method == "notifications/resources/updated":
			// Only its URI goes on: the subscription id means nothing
			// past this stream.
			var u struct {
				URI string `json:"uri"`
			}
			if json.Unmarshal(m.Params, &u) == nil && u.URI != "" {
				p, _ := json.Marshal(u)
				c.events.SessionNotification(m.Method, p)
			}
		case m.IsNotification() && sessionWide(m.Method):
			// Its params hold only the upstream's subscription id.
			c.events.SessionNotification(m.Method, nil)
		}
	}
}

// listenFor starts, for the modern session s, the listen that brings the
// server's list changes and resource updates, when there is someone to tell
// and something to hear: a list the server says changes, or resources it
// lets one subscribe to. At most one runs per session.
func (c *streamableClient) listenFor(s *session) {
	flags := listenFlags(s.init)
	if c.events == nil || flags == nil && !subscribable(s.init) {
		return
	}
	if !s.listening.CompareAndSwap(false, true) {
		return
	}
	c.tasks.spawn(func() {
		c.keepOpen(s, "subscriptions/listen", func() (bool, error) { return c.subscribe(s, flags) })
	})
}
