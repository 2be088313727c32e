package registry

import (
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// Every answer is redacted, so a client that reads a record, edits it and
// sends it back sends "[redacted]" for each credential. On update such a value
// means "keep the stored one"; on create (nothing stored) it is refused, so
// the marker is never stored as a credential.
//
// keepRedacted restores, in next, each credential still equal to its redacted
// form from cur (nil on create), and reports the markers it cannot restore.
func keepRedacted(next *bus.ServerSpec, cur *bus.ServerSpec) config.Errors {
	base := "mcp_servers." + next.Name
	var errs config.Errors
	marker := func(field string) {
		errs = append(errs, config.FieldError{Path: base + "." + field,
			Msg: "is the redaction marker " + bus.Redacted + ": send the real value, or leave the field out to keep the stored one"})
	}
	var old bus.ServerSpec
	if cur != nil {
		old = *cur
	}
	scalars := []struct {
		field     string
		next, old *string
	}{
		{"auth_value", &next.AuthValue, &old.AuthValue},
		{"client_secret", &next.ClientSecret, &old.ClientSecret},
		{"aws_access_key_id", &next.AWSAccessKeyID, &old.AWSAccessKeyID},
		{"aws_secret_access_key", &next.AWSSecretAccessKey, &old.AWSSecretAccessKey},
		{"aws_session_token", &next.AWSSessionToken, &old.AWSSessionToken},
	}
	for _, s := range scalars {
		if *s.next != bus.Redacted {
			continue
		}
		if *s.old == "" {
			marker(s.field)
			continue
		}
		*s.next = *s.old
	}
	for _, u := range []struct {
		field     string
		next, old *string
	}{{"url", &next.URL, &old.URL}, {"token_url", &next.TokenURL, &old.TokenURL}} {
		if *u.next == "" || !strings.Contains(*u.next, bus.Redacted) {
			continue
		}
		if *u.old != "" && *u.next == bus.RedactURL(*u.old) {
			*u.next = *u.old
			continue
		}
		marker(u.field)
	}
	for _, m := range []struct {
		field     string
		next, old map[string]string
	}{{"static_headers", next.StaticHeaders, old.StaticHeaders}, {"env", next.Env, old.Env}} {
		for k, v := range m.next {
			if v != bus.Redacted {
				continue
			}
			if ov, ok := m.old[k]; ok {
				m.next[k] = ov
			} else {
				marker(m.field + "." + k)
			}
		}
	}
	for i, a := range next.Args {
		if a != bus.Redacted {
			continue
		}
		if i < len(old.Args) {
			next.Args[i] = old.Args[i]
		} else {
			marker("args[" + strconv.Itoa(i) + "]")
		}
	}
	return errs
}
