package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// healthEnv names the endpoint `mcpbus health` probes when --url is not
// given: an image's HEALTHCHECK runs `mcpbus health` with no arguments, and
// each service's container sets where its health endpoint listens.
const healthEnv = "MCPBUS_HEALTH_URL"

// defaultListen is where `mcpbus serve` listens unless told otherwise, and
// defaultHealthURL its liveness probe there.
const (
	defaultListen    = "127.0.0.1:4000"
	defaultHealthURL = "http://" + defaultListen + "/health/liveliness"
)

// healthCmd implements `mcpbus health`: GET a health endpoint of a process on
// this host and exit 0 on 200, 1 otherwise, saying why. It is what a
// container's HEALTHCHECK runs (the image has no shell and no curl).
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("health", args, stdout, stderr)
	def := defaultHealthURL
	if v := os.Getenv(healthEnv); v != "" {
		def = v
	}
	target := fs.String("url", def, "health endpoint to probe: an ingress's /health/liveliness or /health/readiness, or another process's --admin-listen ("+healthEnv+" sets the default)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long the probe may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health: unexpected argument %q", fs.Arg(0))
	}
	u, err := url.Parse(*target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("health: --url %q is not an http(s) URL", *target)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %s unreachable: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %s: %s", u.Redacted(), resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", u.Redacted(), strings.TrimSpace(string(body)))
	return nil
}
