package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// request's era. params without them is returned as it is.
func StripModernMeta(params json.RawMessage) (json.RawMessage, error) {
	raw, ok, _ := Field(params, "_meta")
	if !ok || !bytes.Contains(raw, []byte(`"io.modelcontextprotocol/`)) {
		return params, nil
	}
	var p map[string]json.RawMessage
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return nil, fmt.Errorf("params._meta: %w", err)
	}
	for _, k := range modernMetaKeys {
		delete(meta, k)
	}
	if len(meta) == 0 {
		delete(p, "_meta")
	} else {
		b, _ := json.Marshal(meta)
		p["_meta"] = b
	}
	return json.Marshal(p)
}
