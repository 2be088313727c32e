package router

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// filterKey is what makes server s's lists specific to this caller: its tool
// permissions there, the forwarded headers that may reach s (per-request
// credentials can change what an upstream lists), the client's capabilities,
// and the session when those make the worker open an upstream session for it
// alone. "" when nothing does (the common case). Values are hashed, never kept.
func filterKey(s bus.ServerSpec, env bus.Envelope) string {
	tools, limited := env.Caller.Permissions.Tools[s.Name]
	var fwd []string
	if len(env.Forward) > 0 {
		own := "x-mcp-" + strings.ToLower(s.Name) + "-"
		for name := range env.Forward {
			if strings.HasPrefix(strings.ToLower(name), own) || slices.ContainsFunc(s.ExtraHeaders, func(h string) bool {
				return http.CanonicalHeaderKey(h) == http.CanonicalHeaderKey(name)
			}) {
				fwd = append(fwd, name)
			}
		}
	}
	caps := strings.TrimSpace(string(env.ClientCapabilities))
	if caps == "{}" {
		caps = ""
	}
	if !limited && len(fwd) == 0 && caps == "" {
		return ""
	}
	h := sha256.New()
	if limited {
		t := slices.Clone(tools)
		sort.Strings(t)
		h.Write([]byte("tools\x00" + strings.Join(t, "\x00") + "\x01"))
	}
	sort.Strings(fwd)
	for _, name := range fwd {
		h.Write([]byte(strings.ToLower(name) + "\x00" + env.Forward[name] + "\x01"))
	}
	h.Write([]byte(caps + "\x01"))
	if bus.PrivateCapabilities(env.ClientCapabilities) {
		h.Write([]byte(env.Session))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
