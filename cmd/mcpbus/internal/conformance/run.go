package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/localhttp"
	"io"
	"time"
)

// Run implements `mcpbus conformance-fixture`: it serves New().Handler() at
// /mcp on a loopback address until ctx is cancelled (SIGINT/SIGTERM), after
// printing one line with its URL to stdout.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("conformance-fixture", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3010", "loopback address to listen on (port 0 picks a free port)")
	watch := fs.Duration("watch-interval", 3*time.Second, "how often test://watched-resource changes (0: never)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpbus conformance-fixture [--listen 127.0.0.1:3010] [--watch-interval 3s]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("conformance-fixture: unexpected arguments %q", fs.Args())
	}
	if *watch < 0 {
		return fmt.Errorf("conformance-fixture: --watch-interval must not be negative, got %s", *watch)
	}
	if err := localhttp.CheckLoopback("conformance-fixture", *listen, "the fixture is for local tests only"); err != nil {
		return err
	}

	f := New()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *watch > 0 {
		go f.WatchLoop(ctx, *watch)
	}
	return localhttp.Serve(ctx, "conformance-fixture", *listen, f.Handler(), stdout, "conformance fixture listening on http://%s/mcp")
}
