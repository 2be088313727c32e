package config

import (
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"go.yaml.in/yaml/v3"
)

// Audit is general_settings.mcp_audit (docs/AUDIT.md): whether tool workers
// record every tools/call in the audit stream, what of its arguments, and
// the stream's retention.
type Audit struct {
	Enabled bool
	// Arguments: hash (the default), full or none.
	Arguments bus.AuditArguments
	// MaxAge and MaxBytes bound the stream; 0: the defaults (30 days, 1 GiB).
	MaxAge   time.Duration
	MaxBytes int64
}

var auditKeys = []string{"enabled", "arguments", "max_age", "max_bytes"}

// readAudit reads general_settings.mcp_audit.
func readAudit(p *problems, path string, n *yaml.Node, env LookupEnv) Audit {
	a := Audit{Arguments: bus.AuditArgsHash}
	if isNull(n) {
		return a
	}
	if !isMapping(n) {
		p.errorf(path, "must be a mapping ("+strings.Join(auditKeys, ", ")+")")
		return a
	}
	var unknown []string
	for _, kv := range pairs(n) {
		kp := path + "." + kv.key
		switch kv.key {
		case "enabled":
			a.Enabled = p.boolean(kp, kv.val, env)
		case "arguments":
			switch v := bus.AuditArguments(readString(p, kp, kv.val, env)); v {
			case bus.AuditArgsHash, bus.AuditArgsFull, bus.AuditArgsNone:
				a.Arguments = v
			case "":
			default:
				p.errorf(kp, "must be hash, full or none, got "+strconv.Quote(string(v)))
			}
		case "max_age":
			if s := readString(p, kp, kv.val, env); s != "" {
				d, err := parseAge(s)
				if err != nil || d < time.Minute {
					p.errorf(kp, `must be a duration of a minute or more, such as "30d", "12h" or "90m"`)
				}
				a.MaxAge = d
			}
		case "max_bytes":
			if s := readString(p, kp, kv.val, env); s != "" {
				v, err := parseBytes(s)
				if err != nil || v < 1<<20 {
					p.errorf(kp, `must be a size of 1MiB or more: a number of bytes, or with KiB, MiB, GiB or TiB ("512MiB")`)
				}
				a.MaxBytes = v
			}
		default:
			unknown = append(unknown, kv.key)
		}
	}
	unknownKeys(p, path, "mcp_audit", unknown, auditKeys)
	return a
}

// parseAge reads a Go duration or a number of days ("30d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, strconv.ErrSyntax
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// parseBytes reads a number of bytes, optionally with a binary unit.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(s, u); ok {
			s, mult = strings.TrimSpace(n), int64(1)<<(10*(i+1))
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > (1<<50)/mult {
		return 0, strconv.ErrSyntax
	}
	return v * mult, nil
}
