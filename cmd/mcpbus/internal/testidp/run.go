package testidp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// fileConfig is --config: YAML or JSON.
type fileConfig struct {
	Users   []User   `yaml:"users"`
	Clients []Client `yaml:"clients"`
	// AccessTokenTTL is a Go duration ("2s", "5m").
	AccessTokenTTL string `yaml:"access_token_ttl"`
}

// DemoOptions are the built-in users and client of `mcpbus dev-idp`:
// alice (group eng) and bob (group ops), and the public client
// "mcp-client" whose redirect URIs are http://127.0.0.1/callback and
// http://localhost/callback on any port.
func DemoOptions() Options {
	return Options{
		Users: []User{
			{ID: "alice", Email: "alice@example.test", Password: "alice-password", Groups: []string{"eng"}},
			{ID: "bob", Email: "bob@example.test", Password: "bob-password", Groups: []string{"ops"}},
		},
		Clients: []Client{
			{ID: "mcp-client", RedirectURIs: []string{"http://127.0.0.1/callback", "http://localhost/callback"}},
		},
	}
}

// Run implements `mcpbus dev-idp`: the provider on a loopback address
// until ctx ends, after one line with its issuer URL on stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-idp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (loopback only; port 0 picks a free port)")
	configFile := fs.String("config", "", "YAML or JSON file with users, clients and access_token_ttl (default: the demo users alice and bob, client mcp-client)")
	accessTTL := fs.Duration("access-token-ttl", 0, "access token lifetime (default 5m; overrides the file's)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpbus dev-idp [--addr 127.0.0.1:0] [--config FILE] [--access-token-ttl 5m]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dev-idp: unexpected arguments %q", fs.Args())
	}
	opts := DemoOptions()
	if *configFile != "" {
		var err error
		if opts, err = loadConfig(*configFile); err != nil {
			return err
		}
	}
	opts.Addr = *addr
	if *accessTTL != 0 {
		opts.AccessTokenTTL = *accessTTL
	}
	idp, err := Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("dev-idp: %w", err)
	}
	defer idp.Close()
	fmt.Fprintf(stdout, "test identity provider listening on %s (issuer; users %s; clients %s)\n", idp.Issuer(), names(opts.Users), clientNames(opts.Clients))
	<-ctx.Done()
	return nil
}

// loadConfig reads a --config file; unknown keys are errors.
func loadConfig(path string) (Options, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Options{}, fmt.Errorf("dev-idp: --config: %w", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return Options{}, fmt.Errorf("dev-idp: --config %s: %w", path, err)
	}
	if len(fc.Users) == 0 || len(fc.Clients) == 0 {
		return Options{}, fmt.Errorf("dev-idp: --config %s: needs at least one user and one client", path)
	}
	opts := Options{Users: fc.Users, Clients: fc.Clients}
	if fc.AccessTokenTTL != "" {
		d, err := time.ParseDuration(fc.AccessTokenTTL)
		if err != nil || d <= 0 {
			return Options{}, fmt.Errorf("dev-idp: --config %s: access_token_ttl %q is not a positive duration", path, fc.AccessTokenTTL)
		}
		opts.AccessTokenTTL = d
	}
	return opts, nil
}

func names(users []User) string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = u.ID
	}
	return strings.Join(out, ", ")
}

func clientNames(clients []Client) string {
	out := make([]string, len(clients))
	for i, c := range clients {
		out[i] = c.ID
	}
	return strings.Join(out, ", ")
}
