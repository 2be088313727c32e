package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
)

const replayUsage = `usage:
  mcpbus replay REQUEST_ID --upstream SERVER|URL [--since 30d] [--url GATEWAY] [--key-env NAME] [--nats URL]
`

// replayCmd implements `mcpbus replay`: it finds a tools/call's audit
// record (docs/AUDIT.md) and calls the same tool with the same arguments on
// the upstream chosen, to see how a changed upstream answers it. The call
// is never made with the original caller's credentials: through the
// gateway (--upstream SERVER) it is the operator's master key's call, so
// the server's worker uses that server's own configured credentials; to a
// URL (--upstream http(s)://...) it carries none.
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay", args, stdout, stderr)
	natsURL := natsURLFlag(fs)
	join := natsSecurityFlags(fs)
	client := adminFlags(fs)
	upstream := fs.String("upstream", "", "the server (through the gateway, with its configured credentials) or an MCP URL (no credentials) to call")
	since := fs.String("since", "30d", "look this far back for the record (10m, 2h, 7d) or from this RFC 3339 time")
	id, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, rest = args[0], args[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("replay: unexpected argument %q", fs.Arg(0))
	}
	if id == "" || *upstream == "" {
		fmt.Fprint(stderr, replayUsage)
		return errors.New("replay: want a request id and --upstream")
	}
	from, err := parseSince(*since, time.Now())
	if err != nil {
		return err
	}
	nc, err := usageConn(*natsURL, join)
	if err != nil {
		return err
	}
	rec, err := findAuditRecord(ctx, nc, id, from)
	nc.Close()
	if err != nil {
		return err
	}
	if rec.Method != bus.MethodToolsCall || rec.Tool == "" {
		return fmt.Errorf("replay: request %s is a %s, not a tools/call", id, rec.Method)
	}
	if rec.Arguments == nil {
		why := "its arguments were recorded as a hash only (general_settings.mcp_audit.arguments: full records them)"
		if rec.ArgumentsTruncated {
			why = "its arguments were over the 16 KiB a record keeps"
		}
		return fmt.Errorf("replay: request %s cannot be replayed: %s", id, why)
	}
	endpoint, header := *upstream, http.Header{}
	if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		c, err := client(stderr)
		if err != nil {
			return err
		}
		if !bus.ValidToken(endpoint) {
			return fmt.Errorf("replay: --upstream %q: want a server name or an http(s) URL", endpoint)
		}
		endpoint = c.base + "/mcp/" + url.PathEscape(endpoint)
		header.Set("Authorization", "Bearer "+c.key) // the operator's, never the recorded caller's
	}
	res, err := replayCall(ctx, endpoint, header, rec.Tool, rec.Arguments)
	if err != nil {
		return fmt.Errorf("replay of %s on %s: %w", id, *upstream, err)
	}
	outcome := bus.AuditOK
	if res.IsError {
		outcome = "ok (isError)"
	}
	fmt.Fprintf(stderr, "replayed %s %s/%s on %s: recorded %s, now %s\n", id, rec.Server, rec.Tool, *upstream, rec.Outcome, outcome)
	out, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}

// findAuditRecord reads the audit stream from from for request id's record.
func findAuditRecord(ctx context.Context, nc *nats.Conn, id string, from time.Time) (bus.AuditRecord, error) {
	var found *bus.AuditRecord
	errFound := errors.New("found")
	err := bus.ReadAudit(ctx, nc, bus.SubjectAuditAll, bus.UsageStart{Time: &from}, false, func(m bus.UsageMsg) error {
		if m.Header.Get("Nats-Msg-Id") != id {
			return nil
		}
		var r bus.AuditRecord
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return fmt.Errorf("audit record of %s: %w", id, err)
		}
		found = &r
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return bus.AuditRecord{}, err
	}
	if found == nil {
		return bus.AuditRecord{}, fmt.Errorf("replay: no audit record of request %s since %s", id, from.UTC().Format(time.RFC3339))
	}
	return *found, nil
}

// replayCall calls tool with args on the MCP endpoint, with header.
func replayCall(ctx context.Context, endpoint string, header http.Header, tool string, args json.RawMessage) (*mcp.CallToolResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "mcpbus-replay", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: fixedHeader{header}}, MaxRetries: -1}, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
}

// fixedHeader adds h to every request.
type fixedHeader struct{ h http.Header }

func (f fixedHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range f.h {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}
