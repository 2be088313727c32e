// Package localhttp serves the binary's test and demo MCP servers
// (demo-upstream, conformance-fixture) on a local address until ctx ends.
package localhttp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// CheckLoopback refuses addresses that would accept connections from other
// hosts; why says what to do instead.
func CheckLoopback(cmd, addr, why string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: bad --listen %q: %w", cmd, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s: refusing to listen on non-loopback address %q (%s)", cmd, addr, why)
}

// Serve listens on addr, serves h at /mcp and prints banner (with %s for
// the address) on stdout once it accepts; it returns when ctx ends (after a
// graceful shutdown of at most 5 s) or the server fails.
func Serve(ctx context.Context, cmd, addr string, h http.Handler, stdout io.Writer, banner string) error {
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	return ServeAll(ctx, cmd, addr, mux, stdout, banner)
}

// ServeAll is Serve with h answering every path.
func ServeAll(ctx context.Context, cmd, addr string, h http.Handler, stdout io.Writer, banner string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Request contexts end with ctx, so open SSE streams do not hold up shutdown.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, banner+"\n", ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", cmd, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return nil
}
