package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/mcpbus/mcpbus/bus"
)

// `mcpbus servers pins|approve|reject`: a server's pinned tool definitions
// (tool_pinning, docs/PINNING.md) over the admin API.

func pinPath(server, tool, rest string) string {
	p := serverPath(server, "/tool-pins")
	if tool != "" {
		p += "/" + url.PathEscape(tool)
	}
	return p + rest
}

// serversPins lists a server's pins, or shows one tool's: its pinned and
// pending definitions, what changed, and its history.
func serversPins(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers pins", args, stdout, stderr)
	client := adminFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 || strings.TrimSpace(pos[0]) == "" {
		return fmt.Errorf("usage: mcpbus servers pins NAME [TOOL] (see mcpbus servers help)")
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	if len(pos) == 2 {
		var d bus.PinDetail
		if err := c.do(ctx, http.MethodGet, pinPath(pos[0], pos[1], ""), nil, &d); err != nil {
			return err
		}
		return printPin(stdout, d)
	}
	var list bus.PinList
	if err := c.do(ctx, http.MethodGet, pinPath(pos[0], "", ""), nil, &list); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: tool_pinning %s\n", list.Server, list.ToolPinning)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSTATUS\tHASH\tPENDING\tPINNED AT\tAPPROVED BY")
	for _, p := range list.Pins {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Tool, p.Status, shortHash(p.Hash), orDash(shortHash(p.PendingHash)),
			p.PinnedAt.Format("2006-01-02 15:04:05Z"), orDash(p.ApprovedBy))
	}
	return tw.Flush()
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func printPin(w io.Writer, d bus.PinDetail) error {
	fmt.Fprintf(w, "%s on %s: %s\npinned   %s (%s%s)\n  %s\n", d.Tool, d.Server, d.Status, d.Hash, d.PinnedAt.Format("2006-01-02 15:04:05Z"),
		map[bool]string{true: ", approved by " + d.ApprovedBy, false: ""}[d.ApprovedBy != ""], d.Definition)
	if d.Status == bus.PinPending {
		fmt.Fprintf(w, "pending  %s (since %s)\n  %s\nchanged:\n", d.PendingHash, d.PendingSince.Format("2006-01-02 15:04:05Z"), d.PendingDefinition)
		for _, f := range d.Diff {
			fmt.Fprintf(w, "  %s\n    - %s\n    + %s\n", f.Field, orDash(string(f.Pinned)), orDash(string(f.Pending)))
		}
		fmt.Fprintf(w, "approve: mcpbus servers approve %s %s --hash %s\n", d.Server, d.Tool, d.PendingHash)
	}
	fmt.Fprintln(w, "history:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range d.History {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", h.Revision, h.At.Format("2006-01-02 15:04:05Z"), h.Status, shortHash(h.Hash),
			orDash(shortHash(h.PendingHash)), orDash(h.ApprovedBy))
	}
	return tw.Flush()
}

// serversPinDecision approves or rejects a tool's pending definition.
func serversPinDecision(ctx context.Context, op string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("servers "+op, args, stdout, stderr)
	client := adminFlags(fs)
	hash := fs.String("hash", "", "the pending hash reviewed (`mcpbus servers pins NAME TOOL`); refused if the tool changed again")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || strings.TrimSpace(pos[0]) == "" || pos[1] == "" {
		return fmt.Errorf("usage: mcpbus servers %s NAME TOOL [--hash H] (see mcpbus servers help)", op)
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	var out bus.ToolPin
	if err := c.do(ctx, http.MethodPost, pinPath(pos[0], pos[1], "/"+op), map[string]string{"hash": *hash}, &out); err != nil {
		return err
	}
	if op == "approve" {
		fmt.Fprintf(stdout, "%s on %s approved: its new definition (%s) is pinned and served again\n", out.Tool, out.Server, shortHash(out.Hash))
	} else {
		fmt.Fprintf(stdout, "%s on %s: the change was rejected; the pinned definition (%s) stays. If the upstream still lists the changed tool, it is withheld again\n",
			out.Tool, out.Server, shortHash(out.Hash))
	}
	return nil
}
