package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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
	if err := checkLoopback(*listen); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("conformance-fixture: %w", err)
	}
	f := New()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *watch > 0 {
		go f.WatchLoop(ctx, *watch)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", f.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Request contexts end with ctx, so open SSE streams do not hold up shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "conformance fixture listening on http://%s/mcp\n", ln.Addr())

	select {
	case err := <-errc:
		return fmt.Errorf("conformance-fixture: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return nil
}

// checkLoopback refuses addresses that would accept connections from other
// hosts: the fixture has no authentication and is for tests only.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("conformance-fixture: bad --listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("conformance-fixture: refusing to listen on non-loopback address %q (the fixture is for local tests only)", addr)
}
