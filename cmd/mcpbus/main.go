// Command mcpbus is the MCP gateway: one binary for every service.
//
//	mcpbus serve --config FILE          all services in one process on embedded NATS
//	mcpbus worker --nats URL            tool workers only, joining a running gateway's NATS
//	mcpbus auth|registry|router|llm|agents|ingress --nats URL --config FILE
//	                                    one service alone (serve --services NAME)
//	mcpbus nats --nats-users FILE --nats-listen ADDR   the embedded NATS server alone
//	mcpbus config check FILE            validate a config without serving
//	mcpbus keys create|list|revoke      manage virtual keys over the admin API
//	mcpbus servers list|drain|undrain|canary|promote   per-upstream operations over the admin API
//	mcpbus usage tail|top               follow or summarize the usage stream
//	mcpbus audit tail|export            follow or export the audit stream
//	mcpbus replay ID --upstream S       re-run a recorded tools/call on an upstream
//	mcpbus demo-upstream                a demo MCP server for trying the gateway
//	mcpbus conformance-fixture          the MCP conformance suite's fixture server (tests)
//	mcpbus fake-llm                     a local LLM provider with scripted models (tests)
//	mcpbus version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/conformance"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/fakellm"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/testidp"
)

const usage = `mcpbus: an MCP gateway over NATS

Usage:
  mcpbus serve --config FILE [--listen 127.0.0.1:4000] [--data ./data] [--nats URL] [--nats-listen 127.0.0.1:4222|off]
              [--routes mcp,llm,agents,admin,ui,metrics]   the route families served (default all)
  mcpbus serve --config FILE --services router[,auth,...] --nats URL   some services only
  mcpbus auth|registry|router|llm|agents|ingress --config FILE --nats URL [serve flags]   one service alone
  mcpbus ingress --config FILE --nats URL --routes mcp   a public edge serving /mcp only (docs/DEPLOY.md)
  mcpbus nats --nats-users FILE|--config FILE [--nats-listen 127.0.0.1:4222] [--data ./data]   the NATS server alone
              [--nats-cluster HOST:PORT --nats-routes URLS --nats-cluster-name N] [--nats-js-domain D]
              [--nats-leafnodes HOST:PORT] [--nats-server-tls-cert F --nats-server-tls-key F --nats-server-tls-ca F]
  mcpbus worker [--nats nats://127.0.0.1:4222] [--servers a,b] [--config FILE] [--allow-stdio-from-api] [--log-format text|json]
                                      (bus credentials: MCPBUS_NATS_USER and MCPBUS_NATS_PASSWORD, or --nats-creds / --nats-nkey FILE;
                                       TLS: --nats-tls-ca, --nats-tls-cert, --nats-tls-key FILE; sealed credentials: MCPBUS_SALT_KEY)
  mcpbus config check FILE
  mcpbus keys create [--alias A] [--team T] [--servers a,b] [--tools server=t1,t2] [--duration 30d] [--rpm N]
  mcpbus keys list [--team T] [--full]
  mcpbus keys revoke KEY_OR_TOKEN...
  mcpbus servers list|drain NAME|undrain NAME|promote NAME [--url URL]   per-upstream operations over the admin API
  mcpbus servers canary NAME --url U --percent P | --command C [--arg A ...] --percent P | --off  [--gateway URL]
  mcpbus usage tail [--server S] [--team T] [--since 10m] [--json] [--nats URL]
  mcpbus usage top [--since 1h] [--server S] [--nats URL]
  mcpbus audit tail [--server S] [--key K] [--since 10m] [--json] [--nats URL]
  mcpbus audit export --since 24h [--until RFC3339] [--server S] [--key K] [--nats URL]
  mcpbus replay REQUEST_ID --upstream SERVER|URL [--url GATEWAY] [--nats URL]
  mcpbus demo-upstream [--listen 127.0.0.1:3001] [--name demo] [--require-header "Name: value"]
  mcpbus conformance-fixture [--listen 127.0.0.1:3010] [--watch-interval 3s]
  mcpbus fake-llm [--listen 127.0.0.1:3020] [--api-key-env NAME]   OpenAI and Anthropic wire formats, scripted models (tests)
  mcpbus connector --hub nats-leaf://HOST:7422 --name USER --config FILE [--servers a,b] [--hub-tls-ca FILE]
                                      serve servers only this machine reaches, joining the gateway as a NATS
                                      leaf node (outbound only; password in MCPBUS_CONNECTOR_PASSWORD)
  mcpbus nats-config --config FILE [--out FILE]   the bus users as a nats-server authorization block, for your own cluster
  mcpbus health [--url http://127.0.0.1:4000/health/liveliness] [--timeout 3s]   exit 0 if the process answers healthy (container HEALTHCHECK)
  mcpbus version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "auth", "registry", "router", "llm", "agents", "ingress", "nats":
		// One service per process (production, or the benchmark's split run).
		err = serveAs(ctx, args[0], append([]string{"--services", args[0]}, args[1:]...), stdout, stderr)
	case "worker":
		err = workerCmd(ctx, args[1:], stdout, stderr)
	case "connector":
		err = connectorCmd(ctx, args[1:], stdout, stderr)
	case "config":
		err = configCmd(args[1:], stdout, stderr)
	case "keys":
		err = keysCmd(ctx, args[1:], stdout, stderr)
	case "servers":
		err = serversCmd(ctx, args[1:], stdout, stderr)
	case "usage":
		err = usageCmd(ctx, args[1:], stdout, stderr)
	case "audit":
		err = auditCmd(ctx, args[1:], stdout, stderr)
	case "replay":
		err = replayCmd(ctx, args[1:], stdout, stderr)
	case "demo-upstream":
		err = demo.Run(ctx, args[1:], stdout, stderr)
	case "conformance-fixture":
		err = conformance.Run(ctx, args[1:], stdout, stderr)
	case "fake-llm":
		err = fakellm.Run(ctx, args[1:], stdout, stderr)
	case "dev-idp":
		err = testidp.Run(ctx, args[1:], stdout, stderr)
	case "nats-config":
		err = natsConfigCmd(args[1:], stdout, stderr)
	case "health":
		err = healthCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "mcpbus", version.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mcpbus: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0 // the flags were printed on stdout
	}
	if err != nil {
		fmt.Fprintln(stderr, "mcpbus:", err)
		return 1
	}
	return 0
}
