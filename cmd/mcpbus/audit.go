package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

const auditUsage = `usage:
  mcpbus audit tail [--server S] [--key K] [--outcome O] [--since 10m|RFC3339] [--json] [--nats URL]
  mcpbus audit export --since 24h|RFC3339 [--until RFC3339|duration] [--server S] [--key K] [--outcome O] [--nats URL]
`

// auditCmd implements `mcpbus audit tail|export`: readers of the audit
// stream (docs/AUDIT.md), as a bus user with the audit role.
func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errors.New("audit: want tail or export")
	}
	switch args[0] {
	case "tail":
		return auditReadCmd(ctx, "tail", args[1:], stdout, stderr)
	case "export":
		return auditReadCmd(ctx, "export", args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("audit: unknown subcommand %q", args[0])
}

// auditQuery is what tail and export select.
type auditQuery struct {
	filter string // subject filter: server and outcome
	key    string // key alias or key id (token) or its first hex digits; "" any
	start  bus.UsageStart
	until  time.Time // zero: no end
}

// keeps reports whether r is one the query selects beyond its subject.
func (q auditQuery) keeps(r bus.AuditRecord) bool {
	if q.key != "" && r.KeyAlias != q.key && r.KeyID != q.key && !(len(q.key) >= 8 && strings.HasPrefix(r.KeyID, q.key)) {
		return false
	}
	return true
}

func auditReadCmd(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit "+sub, args, stdout, stderr)
	url := natsURLFlag(fs)
	join := natsSecurityFlags(fs)
	server := fs.String("server", "", "only this server's records")
	key := fs.String("key", "", "only this key's records: its alias, its token (key_id) or the token's first 8+ hex digits")
	outcome := fs.String("outcome", "", "only records with this outcome: "+strings.Join(bus.AuditOutcomes, ", ")+"; or "+bus.AuditPin+": tool pin changes only")
	since := fs.String("since", "", "start this far back (10m, 2h, 1d) or at this RFC 3339 time")
	var until *string
	var jsonFlag *bool
	if sub == "export" {
		until = fs.String("until", "", "stop at this RFC 3339 time, or this far back (1h); default: now")
		fs.String("format", "jsonl", "output format: jsonl (one record per line, as stored)")
	} else {
		jsonFlag = fs.Bool("json", false, "print each record as its JSON")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit %s: unexpected argument %q", sub, fs.Arg(0))
	}
	if f := fs.Lookup("format"); f != nil && f.Value.String() != "jsonl" {
		return fmt.Errorf("audit export: --format %q: only jsonl is supported", f.Value.String())
	}
	if *outcome != "" && !validOutcome(*outcome) {
		return fmt.Errorf("audit %s: --outcome %q: want one of %s, %s", sub, *outcome, strings.Join(bus.AuditOutcomes, ", "), bus.AuditPin)
	}
	now := time.Now()
	q := auditQuery{filter: bus.AuditFilter(*server, *outcome), key: *key, start: bus.UsageStart{New: true}}
	if *since != "" {
		t, err := parseSince(*since, now)
		if err != nil {
			return err
		}
		q.start = bus.UsageStart{Time: &t}
	} else if sub == "export" {
		return errors.New("audit export: --since is required (a duration such as 24h or 7d, or an RFC 3339 time)")
	}
	if sub == "export" {
		q.until = now
		if *until != "" {
			t, err := parseSince(*until, now)
			if err != nil {
				return fmt.Errorf("audit export: --until: %w", err)
			}
			q.until = t
		}
	}
	nc, err := usageConn(*url, join)
	if err != nil {
		return err
	}
	defer nc.Close()
	if sub == "export" {
		return exportAudit(ctx, nc, q, stdout)
	}
	return tailAudit(ctx, nc, q, *jsonFlag, stdout)
}

func validOutcome(s string) bool {
	if s == bus.AuditPin {
		return true
	}
	for _, o := range bus.AuditOutcomes {
		if s == o {
			return true
		}
	}
	return false
}

// exportAudit prints the records of calls taken, and the pin changes made,
// between q's start and until, one JSON line each, as stored, and returns
// at the end of the stream. Records are stored as calls end, so one taken
// before until may follow one after it: the whole rest of the stream is
// read.
func exportAudit(ctx context.Context, nc *nats.Conn, q auditQuery, out io.Writer) error {
	return bus.ReadAudit(ctx, nc, q.filter, q.start, false, func(m bus.UsageMsg) error {
		at, keep := q.selects(m)
		if keep && !at.After(q.until) && (q.start.Time == nil || !at.Before(*q.start.Time)) {
			fmt.Fprintf(out, "%s\n", m.Data)
		}
		return nil
	})
}

// selects decodes m, a call's record or a pin event, and reports when it
// happened and whether q keeps it. A pin event is no key's call: a query
// for a key leaves pin events out.
func (q auditQuery) selects(m bus.UsageMsg) (time.Time, bool) {
	if bus.IsPinEvent(m.Subject) {
		var e bus.PinEvent
		if json.Unmarshal(m.Data, &e) != nil {
			return time.Time{}, false
		}
		return e.At, q.key == ""
	}
	var r bus.AuditRecord
	if json.Unmarshal(m.Data, &r) != nil {
		return time.Time{}, false
	}
	return r.Time, q.keeps(r)
}

// tailAudit prints one line per record from q's start until ctx ends.
func tailAudit(ctx context.Context, nc *nats.Conn, q auditQuery, asJSON bool, out io.Writer) error {
	return bus.ReadAudit(ctx, nc, q.filter, q.start, true, func(m bus.UsageMsg) error {
		if _, keep := q.selects(m); !keep {
			if !json.Valid(m.Data) {
				fmt.Fprintf(out, "(unreadable record on %s)\n", m.Subject)
			}
			return nil
		}
		switch {
		case asJSON:
			fmt.Fprintf(out, "%s\n", m.Data)
		case bus.IsPinEvent(m.Subject):
			var e bus.PinEvent
			_ = json.Unmarshal(m.Data, &e) // selects decoded it
			fmt.Fprintln(out, pinEventLine(e))
		default:
			var r bus.AuditRecord
			_ = json.Unmarshal(m.Data, &r)
			fmt.Fprintln(out, auditLine(r))
		}
		return nil
	})
}

// auditLine is one record as tail prints it:
//
//	2025-06-01T12:00:00.123Z ok github create_issue 182.4ms upstream=180.1ms key=ci-bot user=ana ip=internal req=Yq3h… args=sha256:5e8f0a1b
func auditLine(r bus.AuditRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %sms upstream=%sms", r.Time.UTC().Format("2006-01-02T15:04:05.000Z"), r.Outcome, r.Server,
		r.Tool, formatMS(r.DurationMS), formatMS(r.UpstreamMS))
	if who := (bus.Identity{KeyID: r.KeyID, Alias: r.KeyAlias}).Name(); who != "" {
		fmt.Fprintf(&b, " key=%s", who)
	}
	if r.User != "" {
		fmt.Fprintf(&b, " user=%s", r.User)
	}
	if r.Team != "" {
		fmt.Fprintf(&b, " team=%s", r.Team)
	}
	fmt.Fprintf(&b, " ip=%s req=%s", r.IPClass, r.RequestID)
	if r.ErrorCode != "" {
		fmt.Fprintf(&b, " code=%s", r.ErrorCode)
	}
	if r.ArgumentsSHA256 != "" {
		fmt.Fprintf(&b, " args=sha256:%s", r.ArgumentsSHA256[:min(8, len(r.ArgumentsSHA256))])
	}
	if r.ArgumentsTruncated {
		b.WriteString(" args_truncated")
	}
	return b.String()
}

// pinEventLine is one pin change as tail prints it:
//
//	2025-06-01T12:00:00.123Z pin pending github create_issue sha256:5e8f0a1b was=sha256:0c1d2e3f
//	2025-06-01T12:05:00.000Z pin approved github create_issue sha256:5e8f0a1b was=sha256:0c1d2e3f by=key 'admin'
func pinEventLine(e bus.PinEvent) string {
	short := func(h string) string { return "sha256:" + h[:min(8, len(h))] }
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %s %s", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), bus.AuditPin, e.Event, e.Server, e.Tool, short(e.Hash))
	if e.PreviousHash != "" {
		fmt.Fprintf(&b, " was=%s", short(e.PreviousHash))
	}
	if e.By != "" {
		fmt.Fprintf(&b, " by=%s", e.By)
	}
	return b.String()
}
