package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
)

// natsConfigCmd implements `mcpbus nats-config`: the bus users of a config
// file (general_settings.mcp_bus_users) as a nats-server authorization block,
// each held to its role's subjects, for an operator's own NATS cluster.
func natsConfigCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("nats-config", args, stdout, stderr)
	cfgPath := fs.String("config", "", "config file whose general_settings.mcp_bus_users to write (required)")
	out := fs.String("out", "", "write the block to this file (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("nats-config: unexpected argument %q", fs.Arg(0))
	}
	if *cfgPath == "" {
		return fmt.Errorf("nats-config: --config FILE is required")
	}
	// Only the bus users: the servers' credentials need not be set here.
	cfg, err := config.LoadParts(*cfgPath, config.Parts{SkipServers: true, SkipModels: true})
	if err != nil {
		return err
	}
	block, err := natsnode.ServerConfig(cfg.BusUsers, *cfgPath)
	if err != nil {
		return fmt.Errorf("nats-config: %w", err)
	}
	if *out == "" {
		_, err = stdout.Write(block)
		return err
	}
	if err := os.WriteFile(*out, block, 0o600); err != nil {
		return fmt.Errorf("nats-config: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d bus users; include it in every node's nats-server configuration\n", *out, len(cfg.BusUsers))
	return nil
}
