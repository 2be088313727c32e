package bus

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Envelope headers: everything a service needs to know about a message besides the
// JSON-RPC payload itself, which travels untouched as the NATS message body.
const (
	HeaderRequestID   = "Mcpbus-Request-Id"
	HeaderKeyID       = "Mcpbus-Caller-Key-Id"
	HeaderKeyAlias    = "Mcpbus-Caller-Alias"
	HeaderTeam        = "Mcpbus-Caller-Team"
	HeaderOrg         = "Mcpbus-Caller-Org"
	HeaderUser        = "Mcpbus-Caller-User"
	HeaderAdmin       = "Mcpbus-Caller-Admin"
	HeaderIPClass     = "Mcpbus-Ip-Class"
	HeaderDeadline    = "Mcpbus-Deadline"
	HeaderStream      = "Mcpbus-Stream"
	HeaderServers     = "Mcpbus-Servers"
	HeaderSession     = "Mcpbus-Session"
	HeaderProtocolVer = "Mcp-Protocol-Version"
	// HeaderForwardPrefix prefixes client headers the ingress passes on for a
	// worker to apply upstream: x-mcp-{server}-{header} and extra_headers.
	HeaderForwardPrefix = "Mcpbus-Fwd-"
	// HeaderParamEnvelope prefixes a 2026-07-28 client's Mcp-Param-* headers
	// (Envelope.ParamHeaders), which the worker checks against the tool.
	HeaderParamEnvelope = "Mcpbus-Param-"
)

// IPClass is how the ingress classified the caller's address. Services never
// re-derive it: the class in the envelope is the one that counts.
type IPClass string

const (
	Internal IPClass = "internal"
	External IPClass = "external"
)

// Identity is who the caller is, as auth verified it. It never holds the key.
type Identity struct {
	KeyID string `json:"key_id"`
	Alias string `json:"key_alias,omitempty"`
	Team  string `json:"team_id,omitempty"`
	// Org is the organization of the key's team (orgs.go), if any; usage
	// events roll up by it.
	Org string `json:"organization_id,omitempty"`
	// User is the user the caller acts for: a key's user_id, or the user an
	// OAuth access token names. Per-user upstream credentials and signed
	// calls are keyed by it (UserKey).
	User  string `json:"user_id,omitempty"`
	Admin bool   `json:"admin,omitempty"`
	// OrgAdmin is the organization this key administers (its user_id is an
	// org_admin member of its team's organization), if any: the ingress
	// lets it through to the key, team and organization admin routes, where
	// auth scopes what it may do to that organization, re-deriving it from
	// its own records rather than from the envelope (so it does not travel
	// in envelope headers).
	OrgAdmin string `json:"org_admin,omitempty"`
	// Permissions are the servers and tools this caller may use.
	Permissions Permissions `json:"permissions"`
	// RateLimited marks a key (or its team) with an rpm_limit: auth must see
	// every call, so its verify answer is never cached.
	RateLimited bool `json:"rate_limited,omitempty"`
	// Expires is when the key stops working, if it expires.
	Expires *time.Time `json:"expires,omitempty"`
	// ToolSearch: the key (or its team) asks for tool search mode on every
	// request (metadata MetaToolSearch, toolsearch.go); a request's
	// ClientToolSearch header overrides it.
	ToolSearch bool `json:"tool_search,omitempty"`
}

// UserKey is whom per-user state (upstream credentials) belongs to: the
// user, else the key itself ("key:" and its id), so a key without a user_id
// still has credentials of its own and never another key's.
func (id Identity) UserKey() string {
	if id.User != "" {
		return "user:" + id.User
	}
	return "key:" + id.KeyID
}

// Who names the caller in a message: "key 'ci-bot'", or "user
// 'alice@example.com'" for one signed in with OAuth, who holds no key.
func (id Identity) Who() string {
	if strings.HasPrefix(id.KeyID, "oauth-") {
		return "user '" + id.Name() + "'"
	}
	return "key '" + id.Name() + "'"
}

// Name is how errors and logs refer to the caller: its alias, else its id.
// A key without an alias is named by the first 8 hex digits of its token, the
// same short form auth uses, never the whole hash.
func (id Identity) Name() string {
	if id.Alias != "" {
		return id.Alias
	}
	if len(id.KeyID) == 64 {
		return id.KeyID[:8]
	}
	return id.KeyID
}

// Envelope is the caller context that travels with a JSON-RPC message on the bus.
type Envelope struct {
	RequestID string
	Caller    Identity
	IPClass   IPClass
	// Deadline, if set, is when the caller stops waiting; work past it is wasted.
	Deadline time.Time
	// Stream is the inbox on which related notifications for this request are sent.
	Stream string
	// Servers are the servers the caller selected (path, header or query), if any.
	Servers []string
	// Session is the downstream MCP session id.
	Session         string
	ProtocolVersion string
	// Forward are client headers (canonical name -> value) a worker may send
	// upstream; the worker decides which apply to its server.
	Forward map[string]string
	// ClientCapabilities are the downstream client's initialize capabilities
	// (stream.go: a worker declares exactly these upstream).
	ClientCapabilities json.RawMessage
	// LogLevel is the session's logging/setLevel level, if it set one.
	LogLevel string
	// ParamHeaders are a 2026-07-28 tools/call's Mcp-Param-* headers (the
	// name after the prefix, canonical -> the value as sent), which the
	// worker checks against the tool's x-mcp-header annotations.
	ParamHeaders map[string]string
	// ToolSearch: the router answers tools/list and tools/call in tool
	// search mode (toolsearch.go), as the ingress settled it.
	ToolSearch bool
}

// Header encodes e as NATS headers.
func (e *Envelope) Header() nats.Header {
	h := nats.Header{}
	e.WriteTo(h)
	return h
}

// WriteTo sets e's fields on h, leaving other headers (trace context) alone.
func (e *Envelope) WriteTo(h nats.Header) {
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(HeaderRequestID, e.RequestID)
	set(HeaderKeyID, e.Caller.KeyID)
	set(HeaderKeyAlias, e.Caller.Alias)
	set(HeaderTeam, e.Caller.Team)
	set(HeaderOrg, e.Caller.Org)
	set(HeaderUser, e.Caller.User)
	if e.Caller.Admin {
		set(HeaderAdmin, "true")
	}
	set(HeaderPermissions, EncodePermissions(e.Caller.Permissions))
	set(HeaderIPClass, string(e.IPClass))
	if !e.Deadline.IsZero() {
		set(HeaderDeadline, strconv.FormatInt(e.Deadline.UnixMilli(), 10))
	}
	set(HeaderStream, e.Stream)
	set(HeaderServers, strings.Join(e.Servers, ","))
	set(HeaderSession, e.Session)
	set(HeaderProtocolVer, e.ProtocolVersion)
	set(HeaderClientCapabilities, string(e.ClientCapabilities))
	set(HeaderLogLevel, e.LogLevel)
	if e.ToolSearch {
		set(HeaderToolSearch, "on")
	}
	for k, v := range e.Forward {
		h[HeaderForwardPrefix+k] = []string{v}
	}
	for k, v := range e.ParamHeaders {
		h[HeaderParamEnvelope+k] = []string{v}
	}
}

// Validate checks every envelope field a caller can influence against the
// bounds of limits.go, so nothing a client sent can make a subject or a header
// that takes a service off the bus. The ingress validates before it
// publishes; ReadEnvelope validates what every service receives.
func (e *Envelope) Validate() *Error {
	if e.Session != "" {
		if err := CheckSessionID(e.Session, "the session id"); err != nil {
			return err
		}
	}
	if err := CheckSelection(e.Servers, "the server selection"); err != nil {
		return err
	}
	if len(e.Forward) > MaxForwardHeaders {
		return Errorf(ErrBadRequest, "%d headers to forward upstream; at most %d", len(e.Forward), MaxForwardHeaders)
	}
	for k, v := range e.Forward {
		if !validHeaderName(k) || !ValidHeaderValue(v) {
			return Errorf(ErrBadRequest, "header %q cannot be forwarded upstream: a forwarded value must be at most %d bytes of printable text", Shorten(k, 64), MaxHeaderValue)
		}
	}
	if len(e.ParamHeaders) > MaxParamHeaders {
		return Errorf(ErrHeaderMismatch, "%d Mcp-Param-* headers; at most %d", len(e.ParamHeaders), MaxParamHeaders)
	}
	for k, v := range e.ParamHeaders {
		if !validHeaderName(k) || !plainHeaderValue(v) || len(v) > MaxMCPHeaderValue {
			return Errorf(ErrHeaderMismatch, "header %s%s carries characters a header value may not (send it in the =?base64?...?= form), or is over %d bytes", HeaderParamPrefix, Shorten(k, 64), MaxMCPHeaderValue)
		}
	}
	if len(e.ClientCapabilities) > MaxHeaderValue {
		return Errorf(ErrInvalidParams, "the client's capabilities are larger than %d bytes", MaxHeaderValue)
	}
	if e.Caller.User != "" && !ValidUserID(e.Caller.User) {
		return Errorf(ErrBadRequest, "the caller's user id must be 1-%d printable characters without spaces", MaxUserIDLen)
	}
	if e.Caller.Org != "" && !ValidToken(e.Caller.Org) {
		return Errorf(ErrBadRequest, "the caller's organization id is not an id (1-%d of A-Z a-z 0-9 _ -)", MaxTokenLen)
	}
	for _, v := range []string{e.RequestID, e.Caller.KeyID, e.Caller.Alias, e.Caller.Team, e.Stream, e.ProtocolVersion, e.LogLevel, string(e.ClientCapabilities)} {
		if !ValidHeaderValue(v) {
			return Errorf(ErrBadRequest, "the request carries a value that cannot travel on the bus (over %d bytes, or control characters)", MaxHeaderValue)
		}
	}
	return nil
}

// plainHeaderValue reports whether v is what a header value may carry as it
// is (SEP-2243): visible ASCII, spaces and tabs; anything else travels in
// the Base64 form.
func plainHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return false
		}
	}
	return true
}

// MaxForwardHeaders bounds the client headers one request forwards upstream.
const MaxForwardHeaders = 64

// validHeaderName reports whether k is an HTTP header name token (RFC 9110),
// which is also a valid NATS header name.
func validHeaderName(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ReadEnvelope decodes the envelope from h and validates it (Validate). A
// missing or unknown IP class reads as External: anything unclear fails
// closed.
func ReadEnvelope(h nats.Header) (Envelope, error) {
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	e := Envelope{
		RequestID: get(HeaderRequestID),
		Caller: Identity{
			KeyID:       get(HeaderKeyID),
			Alias:       get(HeaderKeyAlias),
			Team:        get(HeaderTeam),
			Org:         get(HeaderOrg),
			User:        get(HeaderUser),
			Admin:       get(HeaderAdmin) == "true",
			Permissions: DecodePermissions(get(HeaderPermissions)),
		},
		IPClass:         External,
		Stream:          get(HeaderStream),
		Session:         get(HeaderSession),
		ProtocolVersion: get(HeaderProtocolVer),
		LogLevel:        get(HeaderLogLevel),
		ToolSearch:      get(HeaderToolSearch) == "on",
	}
	if c := get(HeaderClientCapabilities); c != "" {
		e.ClientCapabilities = json.RawMessage(c)
	}
	if IPClass(get(HeaderIPClass)) == Internal {
		e.IPClass = Internal
	}
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, HeaderForwardPrefix); ok && len(v) > 0 {
			if e.Forward == nil {
				e.Forward = map[string]string{}
			}
			e.Forward[name] = v[0]
		}
		if name, ok := strings.CutPrefix(k, HeaderParamEnvelope); ok && len(v) > 0 {
			if e.ParamHeaders == nil {
				e.ParamHeaders = map[string]string{}
			}
			e.ParamHeaders[name] = v[0]
		}
	}
	if s := get(HeaderServers); s != "" {
		e.Servers = strings.Split(s, ",")
	}
	if d := get(HeaderDeadline); d != "" {
		ms, err := strconv.ParseInt(d, 10, 64)
		if err != nil {
			return e, fmt.Errorf("bus: header %s: %q is not a unix millisecond time", HeaderDeadline, d)
		}
		e.Deadline = time.UnixMilli(ms)
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	return e, nil
}
