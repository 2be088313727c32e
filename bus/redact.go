package bus

import "net/url"

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
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{Redacted}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
