package toolworkers

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// maxCredClients bounds the upstream clients kept for per-request credentials;
// the least recently used is closed when a new one is needed.
const maxCredClients = 128

// credClients keeps one link (one upstream client, so one upstream session)
// per distinct set of per-request headers. Upstream sessions are shared
// between callers, so a caller's own credential must never ride on a session
// opened with someone else's: each credential set gets its own.
type credClients struct {
	mu      sync.Mutex
	clients map[string]*credClient
	make    func(header http.Header) *link
}

type credClient struct {
	l    *link
	used time.Time
}

func newCredClients(make func(http.Header) *link) *credClients {
	return &credClients{clients: map[string]*credClient{}, make: make}
}

// get returns the link for these per-request headers, creating it if needed.
func (c *credClients) get(perRequest http.Header) *link {
	key := headerKey(perRequest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.clients[key]; cc != nil {
		cc.used = time.Now()
		return cc.l
	}
	if len(c.clients) >= maxCredClients {
		var oldest string
		for k, cc := range c.clients {
			if oldest == "" || cc.used.Before(c.clients[oldest].used) {
				oldest = k
			}
		}
		go c.clients[oldest].l.close()
		delete(c.clients, oldest)
	}
	cc := &credClient{l: c.make(perRequest), used: time.Now()}
	c.clients[key] = cc
	return cc.l
}

// each calls f for every link.
func (c *credClients) each(f func(*link)) {
	c.mu.Lock()
	links := make([]*link, 0, len(c.clients))
	for _, cc := range c.clients {
		links = append(links, cc.l)
	}
	c.mu.Unlock()
	for _, l := range links {
		f(l)
	}
}

func (c *credClients) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cc := range c.clients {
		cc.l.close()
		delete(c.clients, k)
	}
}

// headerKey is a digest of a header set, so credentials are not kept as map keys.
func headerKey(h http.Header) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	sum := sha256.New()
	for _, k := range names {
		sum.Write([]byte(k + ":" + strings.Join(h[k], ",") + "\n"))
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// neverForwarded are headers a caller may not set upstream through
// x-mcp-{server}-{header}: they belong to the transport, the session or the
// gateway's trace context (a client's tracestate never goes upstream).
var neverForwarded = map[string]bool{
	"Host": true, "Content-Length": true, "Content-Type": true, "Accept": true, "Connection": true,
	"Transfer-Encoding": true, "Upgrade": true, "Te": true, "Trailer": true, "Keep-Alive": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Mcp-Session-Id": true, "Mcp-Protocol-Version": true,
	"Last-Event-Id": true, "X-Litellm-Api-Key": true, "Traceparent": true, "Tracestate": true,
}

// perRequestHeaders picks, from the headers the ingress forwarded, the ones for
// this server: x-mcp-{server}-{header} where {server} is this server's name
// (names may contain '-': the longest known name that matches wins), and the
// headers named in extra_headers.
func (w *Worker) perRequestHeaders(fwd map[string]string) http.Header {
	if len(fwd) == 0 {
		return nil
	}
	var out http.Header
	set := func(k, v string) {
		if out == nil {
			out = http.Header{}
		}
		out.Set(k, v)
	}
	// extra_headers first, then x-mcp-{server}-*: the explicit per-server
	// header wins when both name the same upstream header.
	for name, v := range fwd {
		if canon := http.CanonicalHeaderKey(name); w.extra[canon] && !neverForwarded[canon] {
			set(canon, v)
		}
	}
	// LiteLLM's x-mcp-auth, for a server without auth_value, in its
	// auth_type's header; an explicit x-mcp-<server>-<header> below wins.
	if v, ok := fwd[bus.HeaderMCPAuth]; ok && w.up.CredentialFromRequest {
		if name, val, err := config.AuthHeader(w.up.AuthType, v); err == nil {
			set(name, val)
		}
	}
	own := strings.ToLower(w.up.Name)
	for name, v := range fwd {
		rest, ok := strings.CutPrefix(strings.ToLower(name), "x-mcp-")
		if !ok || w.owner(rest) != own {
			continue
		}
		header := http.CanonicalHeaderKey(rest[len(own)+1:])
		if header != "" && !neverForwarded[header] {
			set(header, v)
		}
	}
	return out
}

// owner returns the longest known server name (lower case) that prefixes rest
// followed by '-', or "".
func (w *Worker) owner(rest string) string {
	return bus.ForwardOwner(rest, w.up.Name, w.servers.Names())
}

// mergeHeaders builds the upstream headers for a per-request credential set:
// the configured credential, overridden by the caller's own for this server,
// then forwarded extra_headers; static_headers are always sent and win. (On an
// aws_sigv4 server the signer sets Authorization last, over all of these.)
func (w *Worker) mergeHeaders(perRequest http.Header) http.Header {
	h := w.up.Header.Clone()
	for k, v := range perRequest {
		if !w.static[k] {
			h[k] = v
		}
	}
	return h
}
