package bus

import (
	"net/http"
	"strings"
)

// HeaderMCPAuth is LiteLLM's client header for an upstream credential: it
// goes to the servers that take theirs from the request
// (ServerSpec.CredentialFromRequest), in their auth_type's header.
const HeaderMCPAuth = "X-Mcp-Auth"

// ForwardFor returns the forwarded client headers (Envelope.Forward) that
// belong to server s: the headers its extra_headers names, x-mcp-auth when
// s takes its credential from the request, and each
// x-mcp-{name}-{header} whose {name} is s's, where the longest of names (every
// server's name; they may contain '-') that prefixes the rest decides. A
// request for one server carries no other server's per-request credential
// onto the bus: the ingress's direct route and each of the router's legs
// apply it, and the worker picks its own again.
func ForwardFor(fwd map[string]string, s ServerSpec, names []string) map[string]string {
	var out map[string]string
	for k, v := range fwd {
		if forwardsTo(k, s, names) {
			if out == nil {
				out = make(map[string]string, len(fwd))
			}
			out[k] = v
		}
	}
	return out
}

func forwardsTo(header string, s ServerSpec, names []string) bool {
	canon := http.CanonicalHeaderKey(header)
	if canon == HeaderMCPAuth {
		return s.CredentialFromRequest()
	}
	for _, h := range s.ExtraHeaders {
		if http.CanonicalHeaderKey(h) == canon {
			return true
		}
	}
	rest, ok := strings.CutPrefix(strings.ToLower(header), "x-mcp-")
	if !ok {
		return false
	}
	return ForwardOwner(rest, s.Name, names) == strings.ToLower(s.Name)
}

// ForwardOwner returns the longest of own and names (lower case) that
// prefixes rest (an x-mcp- header name without that prefix) followed by '-'
// and something more, or "".
func ForwardOwner(rest, own string, names []string) string {
	best := ""
	consider := func(name string) {
		n := strings.ToLower(name)
		if len(n) > len(best) && strings.HasPrefix(rest, n+"-") && len(rest) > len(n)+1 {
			best = n
		}
	}
	consider(own)
	for _, n := range names {
		consider(n)
	}
	return best
}
