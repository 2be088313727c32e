package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/internal/usagestats"
	"github.com/nats-io/nats.go"
)

// defaultNATSURL is the embedded server's loopback listener (`mcpbus serve
// --nats-listen`), unless MCPBUS_NATS_URL says otherwise.
const defaultNATSURL = "nats://127.0.0.1:4222"

const usageUsage = `usage:
  mcpbus usage tail [--server S | --agent A] [--team T] [--org O] [--tool N] [--since 10m|RFC3339] [--json] [--nats URL]
  mcpbus usage top [--since 1h] [--server S | --agent A] [--org O] [--by tool|server|key|team|org] [--nats URL]
`

// usageCmd implements `mcpbus usage tail|top`: readers of the usage stream.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageUsage)
		return errors.New("usage: want tail or top")
	}
	switch args[0] {
	case "tail":
		return usageTailCmd(ctx, args[1:], stdout, stderr)
	case "top":
		return usageTopCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageUsage)
		return nil
	}
	fmt.Fprint(stderr, usageUsage)
	return fmt.Errorf("usage: unknown subcommand %q", args[0])
}

func natsURLFlag(fs *flag.FlagSet) *string {
	def := defaultNATSURL
	if v := os.Getenv("MCPBUS_NATS_URL"); v != "" {
		def = v
	}
	return fs.String("nats", def, "NATS server holding the usage stream (env MCPBUS_NATS_URL)")
}

// usageConn connects to url for reading the usage stream, as the bus user
// the flags or the environment name (a usage role reads with direct gets:
// bus.ReadUsage).
func usageConn(url string, join *natsnode.ConnectOptions) (*nats.Conn, error) {
	o := *join
	o.Name = "mcpbus-usage"
	return natsnode.Connect(url, natsnode.CredentialsFromEnv(o, os.LookupEnv))
}

// parseSince reads a start time: a duration back from now ("90s", "1h",
// "7d") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n float64
		n, err = strconv.ParseFloat(days, 64)
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf("--since %q: want a duration (90s, 1h, 7d) or an RFC 3339 time", s)
	}
	return now.Add(-d), nil
}

func usageTailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("usage tail", args, stdout, stderr)
	url := natsURLFlag(fs)
	join := natsSecurityFlags(fs)
	server := fs.String("server", "", "only this server's events")
	team := fs.String("team", "", "only this team's events (team id)")
	org := fs.String("org", "", "only the events of this organization's teams (organization id)")
	tool := fs.String("tool", "", "only this tool's events")
	agent := fs.String("agent", "", "only this A2A agent's events")
	since := fs.String("since", "", "start this far back (10m, 2h, 1d) or at this RFC 3339 time; default: new events only")
	asJSON := fs.Bool("json", false, "print each event as its JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage tail: unexpected argument %q", fs.Arg(0))
	}
	start := bus.UsageStart{New: true}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return err
		}
		start = bus.UsageStart{Time: &t}
	}
	filter := bus.SubjectUsageAll
	switch {
	case *agent != "" && (*server != "" || *tool != ""):
		return errors.New("usage tail: --agent is an A2A agent's events; it does not go with --server or --tool")
	case *agent != "":
		filter = bus.AgentUsageFilter(*team, *agent, "")
	case *server != "" || *team != "" || *tool != "":
		filter = bus.UsageFilter(*team, *server, *tool)
	}
	nc, err := usageConn(*url, join)
	if err != nil {
		return err
	}
	defer nc.Close()
	return tailUsage(ctx, nc, filter, *org, start, *asJSON, stdout)
}

// tailUsage prints one line per event from start until ctx ends; with org,
// only the events of that organization (the subject does not hold it, so
// each event is read to tell).
func tailUsage(ctx context.Context, nc *nats.Conn, filter, org string, start bus.UsageStart, asJSON bool, out io.Writer) error {
	return bus.ReadUsage(ctx, nc, filter, start, true, func(m bus.UsageMsg) error {
		var ev bus.UsageEvent
		err := json.Unmarshal(m.Data, &ev)
		if org != "" && (err != nil || ev.OrgID != org) {
			return nil
		}
		if asJSON {
			fmt.Fprintf(out, "%s\n", m.Data)
			return nil
		}
		if err != nil {
			fmt.Fprintf(out, "(unreadable event on %s)\n", m.Subject)
			return nil
		}
		fmt.Fprintln(out, usageLine(ev))
		return nil
	})
}

// usageLine is one event as tail prints it:
//
//	2025-06-01T12:00:00.123Z ok github search 12.3ms team=t1 org=acme key=ci-bot in=120 out=340 cost=0.05
func usageLine(ev bus.UsageEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %sms", ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), ev.Status, usagestats.Target(ev),
		usagestats.ToolOrMethod(ev), formatMS(ev.DurationMS))
	if ev.Team != "" {
		fmt.Fprintf(&b, " team=%s", ev.Team)
	}
	if ev.OrgID != "" {
		fmt.Fprintf(&b, " org=%s", ev.OrgID)
	}
	if who := (bus.Identity{KeyID: ev.KeyID, Alias: ev.KeyAlias}).Name(); who != "" {
		fmt.Fprintf(&b, " key=%s", who)
	}
	fmt.Fprintf(&b, " in=%d out=%d", ev.BytesIn, ev.BytesOut)
	if ev.ErrorCode != "" {
		fmt.Fprintf(&b, " code=%s", ev.ErrorCode)
	}
	if ev.PromptTokens+ev.CompletionTokens > 0 {
		fmt.Fprintf(&b, " tokens=%d+%d", ev.PromptTokens, ev.CompletionTokens)
	}
	if ev.Deployment != "" {
		fmt.Fprintf(&b, " deployment=%s", ev.Deployment)
	}
	if ev.Cost != 0 {
		fmt.Fprintf(&b, " cost=%s", formatCost(ev.Cost))
	}
	return b.String()
}

func formatMS(ms float64) string { return strconv.FormatFloat(ms, 'f', 1, 64) }

func formatCost(c float64) string {
	return strconv.FormatFloat(math.Round(c*1e6)/1e6, 'f', -1, 64)
}

func usageTopCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("usage top", args, stdout, stderr)
	url := natsURLFlag(fs)
	join := natsSecurityFlags(fs)
	since := fs.String("since", "1h", "events since this far back (10m, 2h, 7d) or this RFC 3339 time")
	server := fs.String("server", "", "only this server's events")
	agent := fs.String("agent", "", "only this A2A agent's events")
	org := fs.String("org", "", "only the events of this organization's teams (organization id)")
	by := fs.String("by", "tool", "one row per: tool (server and tool), server, key, team or org (organization)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage top: unexpected argument %q", fs.Arg(0))
	}
	group, ok := usagestats.Groups[*by]
	if !ok {
		return fmt.Errorf("usage top: --by %q: want tool, server, key, team or org", *by)
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	nc, err := usageConn(*url, join)
	if err != nil {
		return err
	}
	defer nc.Close()
	filter := bus.SubjectUsageAll
	switch {
	case *agent != "" && *server != "":
		return errors.New("usage top: give --server or --agent, not both")
	case *agent != "":
		filter = bus.AgentUsageFilter("", *agent, "")
	case *server != "":
		filter = bus.UsageFilter("", *server, "")
	}
	events, err := readUsageSince(ctx, nc, from, filter)
	if err != nil {
		return err
	}
	if *org != "" {
		events = slices.DeleteFunc(events, func(ev bus.UsageEvent) bool { return ev.OrgID != *org })
	}
	writeTop(stdout, events, group)
	return nil
}

// readUsageSince reads every event stored since from (the stream's time)
// on subjects matching filter, up to the end of the stream.
func readUsageSince(ctx context.Context, nc *nats.Conn, from time.Time, filter string) ([]bus.UsageEvent, error) {
	var events []bus.UsageEvent
	err := bus.ReadUsage(ctx, nc, filter, bus.UsageStart{Time: &from}, false, func(m bus.UsageMsg) error {
		var ev bus.UsageEvent
		if json.Unmarshal(m.Data, &ev) == nil {
			events = append(events, ev)
		}
		return nil
	})
	return events, err
}

// writeTop prints calls, upstream errors, gateway failures, p50/p95 duration,
// tokens and cost per row of group, most calls first, then a total row.
func writeTop(out io.Writer, events []bus.UsageEvent, group usagestats.Group) {
	rows, total := usagestats.Summarize(events, group)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	label := func(n [2]string) string { // one column when the group has one
		if group.Titles[1] == "" {
			return n[0]
		}
		return n[0] + "\t" + n[1]
	}
	fmt.Fprintln(tw, label(group.Titles)+"\tCALLS\tERRORS\tFAILED\tP50_MS\tP95_MS\tTOKENS\tCOST")
	for _, r := range append(rows, total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\t%s\n", label(r.Name), r.Calls, r.Errors, r.Failed,
			formatMS(r.P50MS), formatMS(r.P95MS), r.Tokens, formatCost(r.Cost))
	}
	tw.Flush()
}
