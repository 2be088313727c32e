package bus

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// MCP 2026-07-28 (the stateless era, SEP-2575) beside the revisions of
// ProtocolVersions (the session era): which era a request belongs to, and
// the standard request headers of the new era (SEP-2243), bounded. Plan:
// docs/plans/mcp-2026-07-28.md, step 2. Nothing routes on these yet; the
// ingress will, when it speaks the new era (step 3).

// FirstModernVersion is the first revision of the stateless era: no
// initialize, no sessions, the protocol version and the client's
// capabilities in every request's _meta.
const FirstModernVersion = "2026-07-28"

// ModernProtocolVersions are the stateless-era revisions mcpbus knows,
// newest first.
var ModernProtocolVersions = []string{"2026-07-28"}

// The _meta keys of a stateless-era request (spec basic/index, _meta).
const (
	MetaProtocolVersion    = "io.modelcontextprotocol/protocolVersion"
	MetaClientCapabilities = "io.modelcontextprotocol/clientCapabilities"
	MetaClientInfo         = "io.modelcontextprotocol/clientInfo"
	MetaLogLevel           = "io.modelcontextprotocol/logLevel"
	// MetaServerInfo names the answering server in a result's _meta.
	MetaServerInfo = "io.modelcontextprotocol/serverInfo"
	// MetaSubscriptionID tags every message of a subscriptions/listen
	// stream with the listen request's id.
	MetaSubscriptionID = "io.modelcontextprotocol/subscriptionId"
)

// The standard request headers of the stateless era (SEP-2243).
const (
	HeaderProtocolVersion = "MCP-Protocol-Version"
	HeaderMCPMethod       = "Mcp-Method"
	HeaderMCPName         = "Mcp-Name"
	// MaxMCPHeaderValue bounds one standard header's value, encoded or
	// decoded.
	MaxMCPHeaderValue = 16 << 10
)

// The Base64 form of a header value that cannot travel as it is.
const (
	headerB64Prefix = "=?base64?"
	headerB64Suffix = "?="
)

// Modern reports whether a request belongs to the stateless era: its
// MCP-Protocol-Version header, or else its params._meta protocol version,
// is FirstModernVersion or later. Revisions are dates, so they compare as
// strings; an unknown later one is modern too (and refused as unsupported
// where it is checked).
func Modern(h http.Header, m *Message) bool {
	if v := h.Get(HeaderProtocolVersion); v != "" {
		return v >= FirstModernVersion
	}
	return m != nil && m.IsRequest() && MetaVersion(m.Params) >= FirstModernVersion
}

// MetaVersion is params._meta's protocol version, or "" when params holds
// none (or not as a string).
func MetaVersion(params json.RawMessage) string {
	meta, ok, amb := Field(params, "_meta")
	if !ok || amb {
		return ""
	}
	v, ok, amb := StringField(meta, MetaProtocolVersion)
	if !ok || amb {
		return ""
	}
	return v
}

// NamedBy is the params field that Mcp-Name mirrors for method: "name" for
// tools/call and prompts/get, "uri" for resources/read, "" for the others.
func NamedBy(method string) string {
	switch method {
	case MethodToolsCall, MethodPromptsGet:
		return "name"
	case MethodResourcesRead:
		return "uri"
	}
	return ""
}

// EncodeHeaderValue is s as a header value: as it is when it is visible
// ASCII (spaces and tabs inside), else in the Base64 form
// "=?base64?<standard Base64 of s>?=". A value that already looks like that
// form, or that starts or ends with a space or tab (which HTTP trims), is
// encoded too, so decoding gives s back.
func EncodeHeaderValue(s string) string {
	if !needsBase64(s) {
		return s
	}
	return headerB64Prefix + base64.StdEncoding.EncodeToString([]byte(s)) + headerB64Suffix
}

func needsBase64(s string) bool {
	if s == "" {
		return false
	}
	if first, last := s[0], s[len(s)-1]; first == ' ' || first == '\t' || last == ' ' || last == '\t' {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c > 0x7e {
			return true
		}
	}
	return strings.HasPrefix(s, headerB64Prefix) && strings.HasSuffix(s, headerB64Suffix)
}

// DecodeHeaderValue reads a header value EncodeHeaderValue wrote. ok is
// false for a Base64 form that does not decode, or a value over
// MaxMCPHeaderValue either way.
func DecodeHeaderValue(v string) (string, bool) {
	if len(v) > MaxMCPHeaderValue {
		return "", false
	}
	inner, prefixed := strings.CutPrefix(v, headerB64Prefix)
	inner, wrapped := strings.CutSuffix(inner, headerB64Suffix)
	if !prefixed || !wrapped {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil || len(b) > MaxMCPHeaderValue {
		return "", false
	}
	return string(b), true
}

// CheckStandardHeaders checks a stateless-era request's standard headers
// against its body, which stays the source of truth (a gateway never routes
// on the headers alone): MCP-Protocol-Version present and equal to the
// _meta version, Mcp-Method equal to the method, and Mcp-Name, for the
// methods that name something (NamedBy), equal to that name once decoded.
// The error says which header and why, never quoting a value; the spec
// answers it with HTTP 400 and -32020 (HeaderMismatch).
func CheckStandardHeaders(h http.Header, m *Message) error {
	if !m.IsRequest() {
		return errors.New("only requests carry the standard headers")
	}
	meta := MetaVersion(m.Params)
	switch v := h.Get(HeaderProtocolVersion); {
	case v == "":
		return fmt.Errorf("%s header missing", HeaderProtocolVersion)
	case meta != "" && v != meta:
		return fmt.Errorf("%s header does not match params._meta %q", HeaderProtocolVersion, MetaProtocolVersion)
	}
	switch v := h.Get(HeaderMCPMethod); {
	case v == "":
		return fmt.Errorf("%s header missing", HeaderMCPMethod)
	case v != m.Method:
		return fmt.Errorf("%s header does not match the body's method", HeaderMCPMethod)
	}
	field := NamedBy(m.Method)
	if field == "" {
		return nil
	}
	raw := h.Get(HeaderMCPName)
	if raw == "" {
		return fmt.Errorf("%s header missing (required for %s)", HeaderMCPName, m.Method)
	}
	name, ok := DecodeHeaderValue(raw)
	if !ok {
		return fmt.Errorf("%s header is not valid: a Base64 form that does not decode, or over %d bytes", HeaderMCPName, MaxMCPHeaderValue)
	}
	inBody, ok, amb := StringField(m.Params, field)
	switch {
	case amb:
		return fmt.Errorf("params.%s is given more than once", field)
	case !ok:
		return fmt.Errorf("params.%s missing: %s names it in %s", field, m.Method, HeaderMCPName)
	}
	if name != inBody {
		return fmt.Errorf("%s header does not match params.%s", HeaderMCPName, field)
	}
	return nil
}

// Modern reports whether the envelope's request is of the stateless era:
// no session, its client's version, capabilities and log level in the
// envelope from the request's _meta.
func (e *Envelope) Modern() bool { return e.ProtocolVersion >= FirstModernVersion }
