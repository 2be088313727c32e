package demo

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/localhttp"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerList collects repeated --require-header "Name: value" flags.
type headerList []requiredHeader

type requiredHeader struct{ name, value string }

func (h *headerList) String() string {
	parts := make([]string, len(*h))
	for i, r := range *h {
		parts[i] = r.name + ": ***"
	}
	return strings.Join(parts, ", ")
}

func (h *headerList) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return fmt.Errorf("want \"Name: value\", got %q", s)
	}
	*h = append(*h, requiredHeader{http.CanonicalHeaderKey(name), value})
	return nil
}

// Run implements `mcpbus demo-upstream`: it serves Handler(name) at /mcp until
// ctx is cancelled, after printing one line with its URL to stdout. With
// --stdio it serves NewServer(name) on stdin/stdout instead (mcp.StdioTransport),
// until stdin ends or ctx is cancelled, and writes nothing to stdout but the
// protocol.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, os.Stdin, stdout, stderr)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3001", "address to listen on (port 0 picks a free port)")
	name := fs.String("name", "demo", "server implementation name")
	allowRemote := fs.Bool("allow-remote", false, "allow listening on a non-loopback address")
	stdio := fs.Bool("stdio", false, "serve MCP on stdin/stdout instead of HTTP (for a stdio upstream)")
	extraTools := fs.Int("extra-tools", 0, "also serve this many generated tools (tool_001 ...), for catalog benchmarks")
	callLatency := fs.Duration("call-latency", 0, "delay every tools/call answer by this long (a slow upstream, for scaling benchmarks)")
	listLatency := fs.Duration("list-latency", 0, "delay every tools/list, prompts/list and resources/list answer by this long (simulates a slow upstream)")
	era := fs.String("era", "", "the MCP revision to speak: empty for 2025-11-25 on sessions, "+EraStateless+" for that revision alone, with no session")
	var required headerList
	fs.Var(&required, "require-header", "answer 401 unless this header has this value, as \"Name: value\" (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpbus demo-upstream [--listen 127.0.0.1:3001] [--name demo] [--era 2026-07-28] [--require-header \"Name: value\"]... [--allow-remote]")
		fmt.Fprintln(stderr, "       mcpbus demo-upstream --stdio [--name demo]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("demo-upstream: unexpected arguments %q", fs.Args())
	}
	if *stdio {
		if len(required) > 0 {
			return errors.New("demo-upstream: --require-header applies to HTTP only, not to --stdio")
		}
		return serveStdio(ctx, *name, stdin, stdout, stderr)
	}
	if !*allowRemote {
		if err := localhttp.CheckLoopback("demo-upstream", *listen, "use --allow-remote"); err != nil {
			return err
		}
	}

	if *era != "" && *era != EraStateless {
		return fmt.Errorf("demo-upstream: --era %q: want empty (2025-11-25, sessions) or %s", *era, EraStateless)
	}
	if *extraTools < 0 || *extraTools > 10000 {
		return fmt.Errorf("demo-upstream: --extra-tools %d: want 0..10000", *extraTools)
	}
	h := requireHeaders(HandlerWith(*name, Options{ExtraTools: *extraTools, ListLatency: *listLatency, CallLatency: *callLatency, Era: *era}), required)
	return localhttp.Serve(ctx, "demo-upstream", *listen, h, stdout, fmt.Sprintf("demo upstream %q listening on http://%%s/mcp", *name))
}

// requireHeaders answers 401 unless every required header has exactly its value.
func requireHeaders(next http.Handler, required []requiredHeader) http.Handler {
	if len(required) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range required {
			got := r.Header.Values(h.name)
			if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(h.value)) != 1 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				json.NewEncoder(w).Encode(map[string]any{
					"error": map[string]string{
						"code":    "unauthorized",
						"message": "missing or wrong " + h.name + " header",
					},
				})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// serveStdio serves NewServer(name) over stdin/stdout until stdin ends or ctx
// is cancelled. Diagnostics go to stderr: stdout carries the protocol only.
func serveStdio(ctx context.Context, name string, stdin io.Reader, stdout, stderr io.Writer) error {
	var t mcp.Transport
	if stdin == os.Stdin && stdout == os.Stdout {
		t = &mcp.StdioTransport{}
	} else { // tests
		t = &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}}
	}
	fmt.Fprintf(stderr, "demo upstream %q serving MCP on stdio\n", name)
	err := NewServer(name).Run(ctx, t)
	if err == nil || ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, mcp.ErrConnectionClosed) {
		return nil // the client closed stdin, or we were told to stop
	}
	return fmt.Errorf("demo-upstream: %w", err)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
