package bus

import (
	"net/http"
	"strings"
)

// Tool search (docs/AGGREGATION.md#tool-search): a mode in which the router
// answers tools/list with three tools (search, describe, call) over every
// tool the caller may use. A caller opts in per request (ClientToolSearch,
// the header a client sends) or per key (key or team metadata
// MetaToolSearch, which auth reads into Identity.ToolSearch); the ingress
// settles the two into Envelope.ToolSearch, which travels as HeaderToolSearch.

const (
	// ClientToolSearch is the HTTP request header a client sends: "on" or
	// "off" (any case); "off" wins over a key's setting.
	ClientToolSearch = "X-Mcpbus-Tool-Search"
	// HeaderToolSearch carries the mode on the bus: present ("on") or absent.
	HeaderToolSearch = "Mcpbus-Tool-Search"
	// MetaToolSearch is the key (or team) metadata field that turns the mode
	// on for every request of the key: true or false.
	MetaToolSearch = "mcp_tool_search"
)

// ToolSearchRequested reads ClientToolSearch: set is false when the client
// sent none (the key's setting applies), on is what it asked for. Any other
// value is a BAD_REQUEST naming the header.
func ToolSearchRequested(h http.Header) (on, set bool, e *Error) {
	v := h.Values(ClientToolSearch)
	if len(v) == 0 {
		return false, false, nil
	}
	if len(v) > 1 {
		return false, false, Errorf(ErrBadRequest, "header %s given %d times; send it once, \"on\" or \"off\"", ClientToolSearch, len(v))
	}
	switch strings.ToLower(strings.TrimSpace(v[0])) {
	case "on":
		return true, true, nil
	case "off":
		return false, true, nil
	}
	return false, false, Errorf(ErrBadRequest, "header %s: %q is not \"on\" or \"off\"", ClientToolSearch, Shorten(v[0], 64))
}

// MetaBool reads a boolean field of key or team metadata: set is false when
// the field is absent; a field of another type is an error naming it.
func MetaBool(metadata map[string]any, field string) (v, set bool, e *Error) {
	raw, ok := metadata[field]
	if !ok || raw == nil {
		return false, false, nil
	}
	b, ok := raw.(bool)
	if !ok {
		return false, false, Errorf(ErrBadRequest, "metadata.%s: must be true or false", field)
	}
	return b, true, nil
}

// SearchesTools reports whether env's request is one the router answers in
// tool search mode, which the ingress must therefore not send directly to a
// worker (Direct).
func SearchesTools(env Envelope, method string) bool {
	return env.ToolSearch && (method == MethodToolsList || method == MethodToolsCall)
}
