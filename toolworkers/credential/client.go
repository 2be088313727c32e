// Package credential is what a tool worker sends upstream on a server's
// behalf, and keeps out of everything it relays back: the replica's HTTP
// connection pool, the credential transports (an OAuth2 client-credentials
// token, an AWS SigV4 signature), the guard that keeps credentials from
// following a redirect to another origin, fixed headers for a transport the
// worker does not drive itself, and the Scrubber that removes every such
// value from answers.
//
// The upstream transports (Streamable HTTP, legacy SSE, stdio) know nothing
// of credentials: they get an *http.Client from here, and the worker wraps
// what they return in a Scrubber.
package credential

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options are what New needs besides the server.
type Options struct {
	// NC and JetStream, if both set, hold the OAuth2 token bucket shared by
	// a server's replicas; Secrets seals the tokens put there (without a
	// key tokens are not shared: each replica fetches its own).
	NC        *nats.Conn
	JetStream jetstream.JetStream
	Secrets   *bus.SecretKey
	Log       *slog.Logger // carries server=<name>
	// Signer, if set, signs every request (signed.go).
	Signer *signing.Signer
}

// Client is one replica's way to a server over HTTP, with the server's
// credentials. Its methods are safe on a nil *Client (a server whose worker
// makes no HTTP requests: stdio).
type Client struct {
	up *config.Upstream
	// HTTP sends requests with the server's credentials; it refuses
	// redirects to another origin.
	HTTP *http.Client
	base *http.Transport // the replica's connection pool
	// The values that change, which answers are scrubbed of too.
	tokens *recentSecrets // OAuth2 access tokens (nil: not an oauth2 server)
	sigs   *signatureLog  // SigV4 signatures (nil: not an aws_sigv4 server)
}

// New builds the replica's HTTP client for up: the connection pool, wrapped
// by the OAuth2 token transport and, last before the network, the SigV4
// signer (so the signature covers every header set before it); with
// signed calls, the JWT transport first of all (signed.go).
func New(up *config.Upstream, o Options) *Client {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	c := &Client{up: up, base: NewBaseTransport()}
	var rt http.RoundTripper = c.base
	if a := up.AWS; a != nil {
		t := newSigV4Transport(up.Name, rt, sigv4Config{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey,
			SessionToken: a.SessionToken, Region: a.Region, Service: a.Service})
		rt, c.sigs = t, t.signed
	}
	if oc := up.OAuth2; oc != nil {
		var store *tokenStore
		if o.NC != nil && o.JetStream != nil && o.Secrets != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var err error
			store, err = oauthTokenBucket(ctx, o.NC, o.JetStream)
			cancel()
			if err != nil {
				store = nil
				o.Log.Warn("oauth2: replicas cannot share tokens (the registry makes the bucket); this one fetches its own", "err", err)
			}
		}
		src := newOAuth2Source(up.Name, oauth2Config{TokenURL: oc.TokenURL, ClientID: oc.ClientID, ClientSecret: oc.ClientSecret, Scopes: oc.Scopes},
			store, &http.Client{Transport: c.base, Timeout: 30 * time.Second}, o.Log)
		src.secrets = o.Secrets
		rt, c.tokens = newOAuth2Transport(rt, src), &src.seen
	}
	if o.Signer != nil {
		// Outermost: it sees the headers set before it (the server's
		// Authorization) and the credential transports run after it.
		rt = &signedTransport{base: rt, server: up.Name, signer: o.Signer, ownAuth: up.OAuth2 != nil || up.AWS != nil}
	}
	c.HTTP = &http.Client{Transport: rt, CheckRedirect: RefuseCrossOrigin}
	return c
}

// WithHeaders is an HTTP client that also sets header on every request, for
// a transport the worker does not drive itself (the go-sdk's legacy SSE
// client); before, if set, sees each request first (trace context).
func (c *Client) WithHeaders(header http.Header, before func(*http.Request)) *http.Client {
	return &http.Client{Transport: &fixedHeaders{base: c.HTTP.Transport, header: header, before: before}, CheckRedirect: RefuseCrossOrigin}
}

// Close closes the replica's idle connections.
func (c *Client) Close() {
	if c != nil {
		c.base.CloseIdleConnections()
	}
}

// NewBaseTransport is the connection pool of one worker replica, shared by
// all its sessions (and its OAuth2 token requests).
func NewBaseTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
}

// RefuseCrossOrigin refuses redirects to another scheme, host or port: Go
// carries custom headers (x-api-key, static_headers) across redirects, and
// the SigV4 signer would sign for the new host, so a server could send the
// configured credential elsewhere.
func RefuseCrossOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if from := via[0].URL; req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
		return errors.New("upstream redirected to another origin; refused so its credentials stay with it")
	}
	return nil
}

// fixedHeaders sets a server's headers on every request.
type fixedHeaders struct {
	base   http.RoundTripper
	header http.Header
	before func(*http.Request)
}

func (f *fixedHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range f.header {
		r.Header[k] = v
	}
	if f.before != nil {
		f.before(r)
	}
	return f.base.RoundTrip(r)
}
