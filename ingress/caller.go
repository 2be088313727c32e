package ingress

import (
	"net/http"
	"strings"
	"unicode"

	"github.com/mcpbus/mcpbus/bus"
)

// callerKey returns the gateway key a client sent. x-litellm-api-key wins, as in
// LiteLLM: clients such as Cursor put the key there so that Authorization can
// carry OAuth. "Bearer " is optional in x-litellm-api-key. A value holding
// spaces or control characters inside is no key: "" (keyProblem says why).
func callerKey(r *http.Request) string {
	k, _ := parseCallerKey(r)
	return k
}

// keyProblem names the header of a key callerKey refused, or "".
func keyProblem(r *http.Request) string {
	_, header := parseCallerKey(r)
	return header
}

func parseCallerKey(r *http.Request) (key, malformedIn string) {
	header := "X-Litellm-Api-Key"
	v := strings.TrimSpace(r.Header.Get(header))
	if v != "" {
		key = stripBearer(v)
	} else {
		header = "Authorization"
		if v = strings.TrimSpace(r.Header.Get(header)); v != "" {
			key, _ = cutBearer(v)
		}
	}
	if strings.IndexFunc(key, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0 {
		return "", header
	}
	return key, ""
}

// cutBearer takes the key out of "Bearer <key>" (any case, a space or a tab
// after the scheme).
func cutBearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:6], "bearer") && (v[6] == ' ' || v[6] == '\t') {
		return strings.TrimSpace(v[7:]), true
	}
	return "", false
}

func stripBearer(v string) string {
	if k, ok := cutBearer(v); ok {
		return k
	}
	if strings.EqualFold(v, "bearer") { // "Bearer " with nothing after it
		return ""
	}
	return v
}

// selection returns the servers the caller chose: the path, then the
// x-litellm-mcp-server header, then ?server=, then x-mcp-servers (a list).
func selection(pathServer string, r *http.Request) []string {
	if pathServer != "" {
		return []string{pathServer}
	}
	if l := splitList(r.Header.Get("X-Litellm-Mcp-Server")); len(l) > 0 {
		return l
	}
	if v := strings.TrimSpace(r.URL.Query().Get("server")); v != "" {
		return []string{v}
	}
	return splitList(r.Header.Get("X-Mcp-Servers"))
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ipClass classifies the caller: by the direct peer, or, behind a trusted
// proxy with use_x_forwarded_for on, by the X-Forwarded-For entry the proxies
// vouch for (see xffPolicy). Anything that does not parse is external (fail
// closed).
func (g *Ingress) ipClass(r *http.Request) bus.IPClass {
	addr, ok := g.xff.clientAddr(r)
	if ok && inAny(g.o.InternalRanges, addr) {
		return bus.Internal
	}
	return bus.External
}
