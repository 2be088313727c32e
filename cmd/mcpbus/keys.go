package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

const keysUsage = `usage:
  mcpbus keys create [--alias A] [--team T] [--servers a,b] [--tools server=t1,t2 ...] [--duration 30d] [--rpm N]
  mcpbus keys list [--team T] [--full]
  mcpbus keys revoke KEY|TOKEN|TOKEN_PREFIX|ALIAS...

Every command talks to the gateway's admin API:
  --url URL        gateway URL (default $MCPBUS_URL, else http://127.0.0.1:4000)
  --key-env NAME   environment variable holding the master key (default MCPBUS_MASTER_KEY)
The master key is read from the environment only, so it stays out of shell history.
`

const (
	defaultAdminURL = "http://127.0.0.1:4000"
	defaultKeyEnv   = "MCPBUS_MASTER_KEY"
)

// keysCmd implements `mcpbus keys ...` over the HTTP admin API.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: want a subcommand: create, list or revoke")
	}
	switch args[0] {
	case "create":
		return keysCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return keysList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return keysRevoke(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return fmt.Errorf("keys: unknown subcommand %q", args[0])
}

// adminClient calls the admin API with the master key.
type adminClient struct {
	base string
	key  string
	http *http.Client
}

// adminFlags adds the flags every keys subcommand shares; client builds the
// client once the flags are parsed.
func adminFlags(fs *flag.FlagSet) (client func(stderr io.Writer) (*adminClient, error)) {
	return adminFlagsAs(fs, "url")
}

// adminFlagsAs is adminFlags with the gateway URL flag named urlFlag (where
// --url means something else: `servers canary --url`).
func adminFlagsAs(fs *flag.FlagSet, urlFlag string) (client func(stderr io.Writer) (*adminClient, error)) {
	def := defaultAdminURL
	if v := strings.TrimSpace(os.Getenv("MCPBUS_URL")); v != "" {
		def = v
	}
	u := fs.String(urlFlag, def, "gateway URL (env MCPBUS_URL)")
	keyEnv := fs.String("key-env", defaultKeyEnv, "name of the environment variable holding the master key")
	return func(stderr io.Writer) (*adminClient, error) {
		base, err := url.Parse(strings.TrimRight(*u, "/"))
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return nil, fmt.Errorf("--%s %q: want http(s)://host:port", urlFlag, *u)
		}
		key := strings.TrimSpace(os.Getenv(*keyEnv))
		if key == "" {
			return nil, fmt.Errorf("no master key: set %s (or name another variable with --key-env)", *keyEnv)
		}
		if base.Scheme == "http" && !isLoopbackHost(base.Hostname()) {
			fmt.Fprintf(stderr, "mcpbus: warning: sending the master key over plain HTTP to %s\n", base.Host)
		}
		return &adminClient{base: base.String(), key: key, http: &http.Client{Timeout: 30 * time.Second}}, nil
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// do sends in (as JSON, if not nil) and decodes a 200 reply into out. Any other
// status is an error carrying the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the gateway at %s: %v", c.base, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the gateway's answer: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, strings.SplitN(path, "?", 2)[0], serverMessage(res.StatusCode, data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s: the gateway sent an unreadable answer", strings.SplitN(path, "?", 2)[0])
		}
	}
	return nil
}

// serverMessage is the message of an error answer: LiteLLM's
// {"error": {"message"}} (or FastAPI's {"detail"}), else the status.
func serverMessage(status int, data []byte) string {
	var b struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Detail any `json:"detail"`
	}
	msg := ""
	if json.Unmarshal(data, &b) == nil {
		msg = b.Error.Message
		if msg == "" {
			if s, ok := b.Detail.(string); ok {
				msg = s
			}
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, status)
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// Parse stopped at "--" (which it consumes): the rest is positional.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// toolsFlag collects repeated --tools server=t1,t2.
type toolsFlag map[string][]string

func (f toolsFlag) String() string {
	var parts []string
	for s, ts := range f {
		parts = append(parts, s+"="+strings.Join(ts, ","))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func (f toolsFlag) Set(v string) error {
	server, list, ok := strings.Cut(v, "=")
	server = strings.TrimSpace(server)
	tools := splitCSV(list)
	if !ok || server == "" || len(tools) == 0 {
		return fmt.Errorf("want server=tool1,tool2, got %q", v)
	}
	for _, t := range tools {
		if !slices.Contains(f[server], t) {
			f[server] = append(f[server], t)
		}
	}
	return nil
}

func splitCSV(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func keysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys create", args, stdout, stderr)
	client := adminFlags(fs)
	alias := fs.String("alias", "", "key alias (a name for people and logs)")
	team := fs.String("team", "", "team id the key belongs to")
	servers := fs.String("servers", "", "comma-separated MCP servers the key may use (default: the team's, or all)")
	groups := fs.String("access-groups", "", "comma-separated access groups whose servers the key may use too")
	tools := toolsFlag{}
	fs.Var(tools, "tools", "server=tool1,tool2: the only tools the key may use on server (repeatable)")
	duration := fs.String("duration", "", "lifetime such as 30d, 12h or 30m (default: no expiry)")
	rpm := fs.Int("rpm", 0, "requests per minute limit (default: none)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("keys create: unexpected argument %q", pos[0])
	}
	if *rpm < 0 {
		return fmt.Errorf("keys create: --rpm must be 0 or more")
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	// Only what the flags set: every other field is left to the server.
	var req bus.KeyGenerateRequest
	if v := strings.TrimSpace(*alias); v != "" {
		req.KeyAlias = &v
	}
	if v := strings.TrimSpace(*team); v != "" {
		req.TeamID = &v
	}
	if l := splitCSV(*servers); len(l) > 0 {
		req.MCPServers = &l
	}
	if l := splitCSV(*groups); len(l) > 0 {
		req.MCPAccessGroups = &l
	}
	if len(tools) > 0 {
		m := map[string][]string(tools)
		req.MCPToolPermissions = &m
	}
	if v := strings.TrimSpace(*duration); v != "" {
		req.Duration = &v
	}
	if *rpm > 0 {
		req.RPMLimit = rpm
	}
	var out bus.KeyGenerateResponse
	if err := c.do(ctx, http.MethodPost, "/key/generate", req, &out); err != nil {
		return err
	}
	if out.Key == "" {
		return errors.New("/key/generate: the gateway's answer holds no key")
	}
	fmt.Fprintln(stdout, out.Key)
	desc := ""
	if out.Token != "" {
		desc = " (token " + short(out.Token)
		if out.KeyAlias != "" {
			desc += ", alias " + out.KeyAlias
		}
		if out.Expires != nil {
			desc += ", expires " + out.Expires.UTC().Format(time.RFC3339)
		}
		desc += ")"
	}
	fmt.Fprintf(stderr, "mcpbus: key created%s. It will not be shown again: store it now.\n", desc)
	return nil
}

func keysList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys list", args, stdout, stderr)
	client := adminFlags(fs)
	team := fs.String("team", "", "only the keys of this team")
	full := fs.Bool("full", false, "show whole tokens (for keys revoke) instead of their prefix")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("keys list: unexpected argument %q", pos[0])
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	keys, err := c.listKeys(ctx, strings.TrimSpace(*team))
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tALIAS\tTEAM\tSERVERS\tEXPIRES")
	now := time.Now()
	for _, k := range keys {
		servers := "-"
		if len(k.MCPServers) > 0 {
			servers = strings.Join(k.MCPServers, ",")
		}
		expires := "never"
		if k.Expires != nil {
			expires = k.Expires.UTC().Format(time.RFC3339)
			if k.Expires.Before(now) {
				expires += " (expired)"
			}
		}
		if k.Blocked {
			expires += " (blocked)"
		}
		token := short(k.Token)
		if *full {
			token = orDash(k.Token)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", token, orDash(k.KeyAlias), orDash(k.TeamID), servers, expires)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(keys) == 0 {
		fmt.Fprintln(stderr, "mcpbus: no keys")
	}
	return nil
}

// listKeys asks for every key (of team, if given) with its alias, team and
// expiry. A key listed by its token alone (a bare string) has only a Token.
func (c *adminClient) listKeys(ctx context.Context, team string) ([]bus.KeyRecord, error) {
	q := url.Values{"return_full_object": {"true"}}
	if team != "" {
		q.Set("team_id", team)
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/key/list?"+q.Encode(), nil, &raw); err != nil {
		return nil, err
	}
	// LiteLLM answers {"keys": [...], ...}; a bare list is read too.
	var entries []bus.KeyListEntry
	var wrapped bus.KeyListResponse
	if json.Unmarshal(raw, &wrapped) == nil {
		entries = wrapped.Keys
	} else if json.Unmarshal(raw, &entries) != nil {
		return nil, errors.New("/key/list: the gateway sent an unreadable answer")
	}
	keys := make([]bus.KeyRecord, len(entries))
	for i, e := range entries {
		if e.View != nil {
			keys[i] = e.View.KeyRecord
		}
		keys[i].Token = e.Token
	}
	return keys, nil
}

func keysRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys revoke", args, stdout, stderr)
	client := adminFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	var keys []string
	for _, p := range pos {
		if p = strings.TrimSpace(p); p != "" {
			keys = append(keys, p)
		}
	}
	if len(keys) == 0 {
		return errors.New("usage: mcpbus keys revoke KEY|TOKEN|TOKEN_PREFIX|ALIAS... (what `keys list` prints keeps the key itself out of shell history)")
	}
	c, err := client(stderr)
	if err != nil {
		return err
	}
	if keys, err = c.resolveKeys(ctx, keys); err != nil {
		return err
	}
	var out bus.KeyDeleteResponse
	if err := c.do(ctx, http.MethodPost, "/key/delete", bus.KeyDeleteRequest{Keys: keys}, &out); err != nil {
		return err
	}
	n := len(keys)
	if out.DeletedKeys != nil {
		n = len(out.DeletedKeys)
	}
	fmt.Fprintf(stdout, "revoked %d key(s)\n", n)
	return nil
}

// minTokenPrefix is the shortest token prefix keys revoke takes.
const minTokenPrefix = 8

// resolveKeys turns each argument into what /key/delete takes: a key
// (sk-...) or a whole token as it is, else the one key whose token starts
// with it (as keys list prints it, with or without its "…") or whose alias
// it is. Nothing is revoked unless every argument names exactly one key.
func (c *adminClient) resolveKeys(ctx context.Context, args []string) ([]string, error) {
	var listed []bus.KeyRecord
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "sk-") || isToken(a) {
			out = append(out, a)
			continue
		}
		if listed == nil {
			var err error
			if listed, err = c.listKeys(ctx, ""); err != nil {
				return nil, err
			}
		}
		prefix := strings.TrimSuffix(a, "…")
		var matches []string
		for _, k := range listed {
			if k.KeyAlias == a || len(prefix) >= minTokenPrefix && isHex(prefix) && strings.HasPrefix(k.Token, prefix) {
				matches = append(matches, k.Token)
			}
		}
		switch len(matches) {
		case 1:
			out = append(out, matches[0])
		case 0:
			if isHex(prefix) && len(prefix) < minTokenPrefix {
				return nil, fmt.Errorf("keys revoke: %q: give at least %d characters of the token, or the alias", a, minTokenPrefix)
			}
			return nil, fmt.Errorf("keys revoke: no key has the alias or token prefix %q; nothing revoked", a)
		default:
			return nil, fmt.Errorf("keys revoke: %q names %d keys; give more of the token (keys list --full); nothing revoked", a, len(matches))
		}
	}
	return out, nil
}

// isToken reports whether s is a whole token: 64 lowercase hex digits.
func isToken(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return s != ""
}

// short is a token's prefix, enough to tell keys apart in a table.
func short(token string) string {
	if len(token) <= 12 {
		return orDash(token)
	}
	return token[:12] + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
