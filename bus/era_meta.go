package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
)

// ModernMeta is what a stateless-era request says about its client in
// params._meta, in place of a session (spec basic/index, _meta).
type ModernMeta struct {
	// Version is the protocol version the request speaks.
	Version string
	// Capabilities are the client's capabilities for this request, compact
	// ("{}" when it declares none).
	Capabilities json.RawMessage
	// LogLevel is the least severe notifications/message level the client
	// wants for this request; "" means none at all.
	LogLevel string
}

// ReadModernMeta reads and checks a stateless-era request's _meta: the
// protocol version (a string mcpbus speaks, else ErrUnsupportedVersion with
// the supported ones), the client's capabilities (an object), the optional
// client info (an object) and log level (an MCP level). A required field
// missing or of the wrong type is ErrInvalidParams naming it.
func ReadModernMeta(params json.RawMessage) (ModernMeta, *Error) {
	var m ModernMeta
	raw, ok, _ := Field(params, "_meta")
	if !ok || !isObject(raw) {
		return m, Errorf(ErrInvalidParams, "params._meta missing: a %s request carries its protocol version and client capabilities there", FirstModernVersion)
	}
	version, ok, _ := StringField(raw, MetaProtocolVersion)
	if !ok {
		return m, Errorf(ErrInvalidParams, "params._meta[%q] missing or not a string", MetaProtocolVersion)
	}
	if !slices.Contains(ModernProtocolVersions, version) {
		return m, UnsupportedVersion(version)
	}
	m.Version = version
	caps, ok, _ := Field(raw, MetaClientCapabilities)
	if !ok || !isObject(caps) {
		return m, Errorf(ErrInvalidParams, "params._meta[%q] missing or not an object ({} declares none)", MetaClientCapabilities)
	}
	var b bytes.Buffer
	if json.Compact(&b, caps) != nil {
		return m, Errorf(ErrInvalidParams, "params._meta[%q] is not valid JSON", MetaClientCapabilities)
	}
	m.Capabilities = b.Bytes()
	if info, ok, _ := Field(raw, MetaClientInfo); ok && !isObject(info) {
		return m, Errorf(ErrInvalidParams, "params._meta[%q] must be an object with name and version", MetaClientInfo)
	}
	if lv, ok, _ := Field(raw, MetaLogLevel); ok {
		level, isString, _ := StringField(raw, MetaLogLevel)
		if _, known := LogLevelRank(level); !isString || !known {
			return m, Errorf(ErrInvalidParams, "params._meta[%q] is %s: not an MCP log level (debug, info, notice, warning, error, critical, alert, emergency)", MetaLogLevel, Shorten(string(lv), 32))
		}
		m.LogLevel = level
	}
	return m, nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// modernMetaKeys are the _meta keys that make a request stateless-era.
var modernMetaKeys = []string{MetaProtocolVersion, MetaClientCapabilities, MetaClientInfo, MetaLogLevel}

// StripModernMeta returns params without the stateless-era _meta keys (and
// without _meta, if nothing else was in it), for an upstream that speaks an
// older revision: such an upstream holds the client's version and
// capabilities in its session, and a newer one would read the keys as the
// request's era. params without them is returned as it is. The other
// members are copied as they came, in their order.
func StripModernMeta(params json.RawMessage) (json.RawMessage, error) {
	raw, ok, _ := Field(params, "_meta")
	if !ok || !bytes.Contains(raw, []byte(`"io.modelcontextprotocol/`)) {
		return params, nil
	}
	start := skipSpace(params, 0)
	if start >= len(params) || params[start] != '{' {
		return nil, errors.New("params: not a JSON object")
	}
	if !json.Valid(params) {
		return nil, errors.New("params: not valid JSON")
	}
	meta := skipSpace(raw, 0)
	if meta >= len(raw) || raw[meta] != '{' {
		return nil, errors.New("params._meta: not a JSON object")
	}
	kept := make([]byte, 0, len(raw))
	_, _ = eachMember(raw, meta, func(k, v []byte) *Error {
		if !slices.Contains(modernMetaKeys, string(k)) {
			kept = appendMember(kept, k, v)
		}
		return nil
	})
	out := make([]byte, 0, len(params))
	_, _ = eachMember(params, start, func(k, v []byte) *Error {
		switch {
		case string(k) != "_meta":
			out = appendMember(out, k, v)
		case len(kept) > 0:
			out = appendMember(out, k, append(append([]byte{'{'}, kept...), '}'))
		}
		return nil
	})
	return append(append([]byte{'{'}, out...), '}'), nil
}

// appendMember appends `"k":v` to dst, after a comma unless dst is empty.
func appendMember(dst, k, v []byte) []byte {
	if len(dst) > 0 {
		dst = append(dst, ',')
	}
	q, _ := json.Marshal(string(k)) // the key as a JSON string (escaped as needed)
	return append(append(append(dst, q...), ':'), v...)
}
