package bus

import (
	"net/url"
	"strings"
)

// RedactURL returns raw with its userinfo removed and every query value replaced by
// Redacted, so a URL that carries a credential can appear in an error or a log line.
// A string that does not parse as a URL is replaced as a whole.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Redacted
	}
	if u.User != nil {
		u.User = nil
	}
	query := ""
	if u.RawQuery != "" {
		// Built by hand so the marker stays readable rather than percent-encoded.
		var b strings.Builder
		for i, kv := range strings.Split(u.RawQuery, "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			k, _, _ := strings.Cut(kv, "=")
			b.WriteString(k + "=" + Redacted)
		}
		query = "?" + b.String()
		u.RawQuery = ""
	}
	u.ForceQuery = false
	return u.String() + query
}
