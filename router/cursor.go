package router

import (
	"encoding/base64"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// Cursors of aggregated lists (docs/AGGREGATION.md): base64url (no padding)
// of {"k": list method, "s": {server: that server's nextCursor}}. Only servers
// with more pages are in it, and only they are asked for the next page. A
// cursor that does not decode, belongs to another list method, is empty, or
// names a server outside the caller's aggregation is refused with -32602
// "invalid cursor". The upstream cursors inside are opaque to the gateway
// and reach only their own server, which judges them.
type cursor struct {
	Kind  string            `json:"k"`
	Pages map[string]string `json:"s"`
}

func encodeCursor(method string, pages map[string]string) string {
	b, _ := json.Marshal(cursor{Kind: method, Pages: pages})
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor for method; servers says which servers the
// caller aggregates.
func decodeCursor(s, method string, servers func(string) bool) (map[string]string, *bus.Error) {
	invalid := bus.Errorf(bus.ErrInvalidParams, "invalid cursor: it was not made by this gateway for %s, or it was altered", method)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, invalid
	}
	var c cursor
	if json.Unmarshal(raw, &c) != nil || c.Kind != method || len(c.Pages) == 0 {
		return nil, invalid
	}
	for server, next := range c.Pages {
		if next == "" || !servers(server) {
			return nil, invalid
		}
	}
	return c.Pages, nil
}
