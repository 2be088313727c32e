package credential

// AWS Signature Version 4 upstream auth: an http.RoundTripper that signs every
// request to an upstream server hosted behind AWS IAM auth (Lambda function URLs,
// API Gateway "execute-api", AgentCore, VPC Lattice, ...).
//
// The transport must be the last wrapper before the network: it signs what it is
// given, so every header set before it (the configured static headers,
// Mcp-Session-Id, MCP-Protocol-Version, Content-Type, Accept) is covered by the
// signature, except the few the signer leaves out by design (Authorization,
// User-Agent, X-Amzn-Trace-Id, Expect, Transfer-Encoding). Headers the HTTP
// transport adds later (Accept-Encoding) are not signed, which is how SigV4 is
// meant to work: the server checks only the headers named in SignedHeaders.
//
// Choices:
//   - The payload is always hashed (never UNSIGNED-PAYLOAD), so a body altered
//     in transit fails verification.
//   - X-Amz-Content-Sha256 is always sent. Lambda URLs and execute-api do not
//     require it, S3 does, and every service accepts it; it is signed too.
//   - X-Amz-Security-Token is sent (and signed) when a session token is given.
//   - For service "s3" the path is not escaped a second time, as S3 expects;
//     every other service gets the SDK's default (double-escaped) canonical URI.
//   - The SDK's signing log (LogSigning) stays off: it would print canonical
//     requests, which hold the session token.
//   - Authorization, X-Amz-Date, X-Amz-Security-Token and X-Amz-Content-Sha256
//     belong to this transport: values set earlier are replaced or dropped.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/mcpbus/mcpbus/bus"
)

// sigv4Config is one upstream's resolved AWS credentials and signing scope.
type sigv4Config struct {
	AccessKeyID, SecretAccessKey, SessionToken, Region, Service string
}

// sigv4Transport signs each request with AWS SigV4 and passes it to base.
type sigv4Transport struct {
	server string // server name, for errors
	base   http.RoundTripper
	creds  aws.Credentials
	region string
	svc    string
	signer *v4.Signer
	now    func() time.Time
	signed *signatureLog // the latest signatures, which answers are scrubbed of (scrub.go)
}

// newSigV4Transport returns a RoundTripper that signs every request with cfg
// and sends it through base (http.DefaultTransport when nil). It must wrap the
// network transport directly, after every other header has been set.
func newSigV4Transport(server string, base http.RoundTripper, cfg sigv4Config) *sigv4Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &sigv4Transport{
		server: server,
		base:   base,
		creds: aws.Credentials{
			AccessKeyID:     cfg.AccessKeyID,
			SecretAccessKey: cfg.SecretAccessKey,
			SessionToken:    cfg.SessionToken,
			Source:          "mcpbus",
		},
		region: cfg.Region,
		svc:    cfg.Service,
		signer: v4.NewSigner(func(o *v4.SignerOptions) {
			o.DisableURIPathEscaping = cfg.Service == "s3"
			o.LogSigning = false
		}),
		now:    time.Now,
		signed: new(signatureLog),
	}
}

// RoundTrip signs a clone of req; req itself is left as it was, apart from its
// body, which is consumed (and closed) as any RoundTripper's is.
func (t *sigv4Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.creds.AccessKeyID == "" || t.creds.SecretAccessKey == "" || t.region == "" || t.svc == "" {
		sigv4CloseBody(req)
		return nil, bus.Errorf(bus.ErrUpstreamAuth, "upstream server %q: AWS SigV4 auth is missing its access key, secret key, region or service", t.server)
	}
	out := req.Clone(req.Context())
	hash, err := t.prepareBody(req, out)
	if err != nil {
		sigv4CloseBody(req)
		return nil, err
	}
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"} {
		out.Header.Del(h)
	}
	out.Header.Set("X-Amz-Content-Sha256", hash)
	if err := t.signer.SignHTTP(req.Context(), t.creds, out, hash, t.svc, t.region, t.now()); err != nil {
		sigv4CloseBody(out)
		// The SDK's error text is not passed on: nothing in it is worth the
		// risk of echoing signing material to a caller.
		return nil, bus.Errorf(bus.ErrUpstreamAuth, "upstream server %q: AWS SigV4 signing failed", t.server)
	}
	t.signed.add(out.Header.Get("Authorization"))
	return t.base.RoundTrip(out)
}

// prepareBody returns the hex SHA-256 of req's body and gives out a body that
// will send exactly those bytes. With GetBody the hash is taken from a fresh
// copy and the original body is sent as is; without it the body is read into
// memory, and out gets the buffer, an exact ContentLength and a GetBody so the
// HTTP transport can still replay it.
func (t *sigv4Transport) prepareBody(req, out *http.Request) (string, error) {
	h := sha256.New()
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		out.ContentLength = 0
	case req.GetBody != nil:
		rc, err := req.GetBody()
		if err != nil {
			return "", t.bodyError()
		}
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			return "", t.bodyError()
		}
		if req.ContentLength > 0 && n != req.ContentLength {
			return "", bus.Errorf(bus.ErrInternal, "upstream server %q: request body is %d bytes, not the declared %d", t.server, n, req.ContentLength)
		}
		out.ContentLength = n
		if n == 0 {
			// An empty body with ContentLength 0 would read as "unknown
			// length" to the HTTP transport; send no body at all.
			req.Body.Close()
			out.Body, out.GetBody = http.NoBody, nil
		}
	default:
		data, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return "", t.bodyError()
		}
		h.Write(data)
		out.ContentLength = int64(len(data))
		out.Body = io.NopCloser(bytes.NewReader(data))
		out.GetBody = func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		if len(data) == 0 {
			out.Body, out.GetBody = http.NoBody, nil
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// bodyError does not carry the read error's text: a body reader's error may
// say anything, and the caller only needs to know signing could not proceed.
func (t *sigv4Transport) bodyError() error {
	return bus.Errorf(bus.ErrInternal, "upstream server %q: reading the request body for AWS SigV4 signing failed", t.server)
}

func sigv4CloseBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}
