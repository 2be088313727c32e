package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/mcpbus/mcpbus/bus"
)

const serversUsage = `usage:
  mcpbus servers list
  mcpbus servers drain NAME        every worker of NAME finishes its calls and takes no new ones
  mcpbus servers undrain NAME      NAME's workers start again
  mcpbus servers canary NAME --url URL --percent P
                                   a canary upstream gets P% of the sessions (0-100); --percent alone ramps it
  mcpbus servers canary NAME --command CMD [--arg A ...] --percent P   the same, for a stdio server
  mcpbus servers canary NAME --off abort the canary: the stable upstream takes every call
  mcpbus servers promote NAME      the canary becomes the server's url (command and args for stdio)
  mcpbus servers pins NAME [TOOL]  NAME's pinned tool definitions (tool_pinning); with TOOL its diff and history
  mcpbus servers approve NAME TOOL [--hash H]   pin TOOL's changed definition: it is served again
  mcpbus servers reject NAME TOOL [--hash H]    keep TOOL's pinned definition, drop the change

Every command talks to the gateway's admin API (/v1/mcp/server):
  --url URL        gateway URL (default $MCPBUS_URL, else http://127.0.0.1:4000);
                   for canary, where --url is the canary's, --gateway URL
  --key-env NAME   environment variable holding the master key (default MCPBUS_MASTER_KEY)
The master key is read from the environment only, so it stays out of shell history.
`

// serversCmd implements `mcpbus servers ...`: per-upstream operations over
// the admin API (bus/server_ops.go).
func serversCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, serversUsage)
		return errors.New("servers: want a subcommand: list, drain, undrain, canary, promote, pins, approve or reject")
	}
	switch args[0] {
	case "list":
		return serversList(ctx, args[1:], stdout, stderr)
	case "drain", "undrain":
		return serversDrain(ctx, args[0], args[1:], stdout, stderr)
	case "canary":
		return serversCanary(ctx, args[1:], stdout, stderr)
	case "promote":
		return serversPromote(ctx, args[1:], stdout, stderr)
	case "pins":
		return serversPins(ctx, args[1:], stdout, stderr) // servers_pins.go
	case "approve", "reject":
		return serversPinDecision(ctx, args[0], args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, serversUsage)
		return nil
	}
	fmt.Fprint(stderr, serversUsage)
	return fmt.Errorf("servers: unknown subcommand %q", args[0])
}

func serversList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers list", args, stdout, stderr)
	client := adminFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("servers list: unexpected argument %q", pos[0])
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	var list []bus.ServerRecord
	if err := c.do(ctx, http.MethodGet, "/v1/mcp/server", nil, &list); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTRANSPORT\tSTATE\tCANARY\tSOURCE")
	for _, s := range list {
		state := "serving"
		if s.Drain {
			state = "drained"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ServerID, orDash(s.Transport), state, canaryText(s.ServerSpec), orDash(s.Source))
	}
	return tw.Flush()
}

// canaryText describes a record's canary: where it is and its share.
func canaryText(s bus.ServerSpec) string {
	switch {
	case s.CanaryURL != "":
		return fmt.Sprintf("%d%% %s", s.CanaryPercent, s.CanaryURL) // redacted by the registry
	case s.CanaryCommand != "":
		return fmt.Sprintf("%d%% %s", s.CanaryPercent, strings.Join(append([]string{s.CanaryCommand}, s.CanaryArgs...), " "))
	}
	return "-"
}

// oneServer is the one server name among the positional arguments.
func oneServer(name string, pos []string) (string, error) {
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return "", fmt.Errorf("usage: mcpbus servers %s NAME (see mcpbus servers help)", name)
	}
	return strings.TrimSpace(pos[0]), nil
}

func serverPath(name, rest string) string {
	return "/v1/mcp/server/" + url.PathEscape(name) + rest
}

func serversDrain(ctx context.Context, op string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers "+op, args, stdout, stderr)
	client := adminFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	name, err := oneServer(op, pos)
	if err != nil {
		return err
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	drain := op == "drain"
	var out bus.ServerRecord
	if err := c.do(ctx, http.MethodPost, serverPath(name, "/drain"), bus.DrainRequest{Drain: &drain}, &out); err != nil {
		return err
	}
	if drain {
		fmt.Fprintf(stdout, "%s drained: its workers finish their calls in flight and take no new ones (calls are refused MCPBUS_SERVER_DRAINED)\n", out.ServerID)
	} else {
		fmt.Fprintf(stdout, "%s undrained: its workers start again\n", out.ServerID)
	}
	return nil
}

// repeated is a flag that may be given many times (--arg a --arg b).
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// serversCanary sets, ramps or aborts a canary. Here --url is the canary's
// URL; the gateway is --gateway (default $MCPBUS_URL).
func serversCanary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers canary", args, stdout, stderr)
	client := adminFlagsAs(fs, "gateway")
	canaryURL := fs.String("url", "", "the canary upstream's URL (http and sse servers)")
	command := fs.String("command", "", "the canary's command (stdio servers)")
	var cargs repeated
	fs.Var(&cargs, "arg", "one argument of the canary's command (repeat for each)")
	percent := fs.Int("percent", -1, "the share of sessions for the canary, 0-100")
	off := fs.Bool("off", false, "abort the canary: the stable upstream takes every call")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	name, err := oneServer("canary", pos)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	given := set["url"] || set["command"] || set["arg"] || set["percent"]
	switch {
	case *off && given:
		return errors.New("servers canary: --off takes no --url, --command, --arg or --percent")
	case !*off && !given:
		return errors.New("usage: mcpbus servers canary NAME --url URL --percent P (or --command CMD [--arg A ...], or --off)")
	case set["percent"] && (*percent < 0 || *percent > 100):
		return fmt.Errorf("servers canary: --percent %d: want a whole number from 0 to 100", *percent)
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	var out bus.ServerRecord
	if *off {
		if err := c.do(ctx, http.MethodDelete, serverPath(name, "/canary"), nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: canary removed, the stable upstream takes every call\n", out.ServerID)
		return nil
	}
	var in bus.CanaryRequest
	if set["url"] {
		in.URL = canaryURL
	}
	if set["command"] {
		in.Command = command
	}
	if set["arg"] {
		in.Args = cargs
	}
	if set["percent"] {
		in.Percent = percent
	}
	if err := c.do(ctx, http.MethodPost, serverPath(name, "/canary"), in, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: canary %s\n", out.ServerID, canaryText(out.ServerSpec))
	return nil
}

func serversPromote(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers promote", args, stdout, stderr)
	client := adminFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	name, err := oneServer("promote", pos)
	if err != nil {
		return err
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	var out bus.ServerRecord
	if err := c.do(ctx, http.MethodPost, serverPath(name, "/canary/promote"), nil, &out); err != nil {
		return err
	}
	target := out.URL
	if out.Transport == "stdio" {
		target = strings.Join(append([]string{out.Command}, out.Args...), " ")
	}
	fmt.Fprintf(stdout, "%s promoted: the canary is now the server (%s) and takes every call\n", out.ServerID, target)
	return nil
}
