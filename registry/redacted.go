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
	for _, f := range bus.ServerFields {
		switch f.Secrecy {
		case bus.Secret:
			if n, o := f.Str(next), *f.Str(&old); *n == bus.Redacted {
				if o == "" {
					marker(f.Name)
				} else {
					*n = o
				}
			}
		case bus.SecretURL:
			n, o := f.Str(next), *f.Str(&old)
			switch {
			case *n == "" || !strings.Contains(*n, bus.Redacted):
			case o != "" && *n == bus.RedactURL(o):
				*n = o
			default:
				marker(f.Name)
			}
		case bus.SecretEach:
			for k, v := range *f.Map(next) {
				if v != bus.Redacted {
					continue
				}
				if ov, ok := (*f.Map(&old))[k]; ok {
					(*f.Map(next))[k] = ov
				} else {
					marker(f.Name + "." + k)
				}
			}
		case bus.RedactEach:
			l, ol := *f.List(next), *f.List(&old)
			for i, a := range l {
				if a != bus.Redacted {
					continue
				}
				if i < len(ol) {
					l[i] = ol[i]
				} else {
					marker(f.Name + "[" + strconv.Itoa(i) + "]")
				}
			}
		}
	}
	return errs
}
