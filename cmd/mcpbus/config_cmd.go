package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/mcpbus/mcpbus/config"
)

// configCmd implements `mcpbus config check FILE`: load and validate exactly as
// serve does, print the warnings, and exit non-zero on any error.
func configCmd(args []string, stdout, stderr io.Writer) error {
	if wantsHelp(args) || len(args) == 1 && args[0] == "help" {
		fmt.Fprintln(stdout, "usage: mcpbus config check FILE\n\nParses and validates FILE as serve would, and prints what it found.")
		return nil
	}
	if len(args) != 2 || args[0] != "check" {
		return errors.New("usage: mcpbus config check FILE")
	}
	f, err := config.Load(args[1])
	if err != nil {
		return err
	}
	for _, w := range f.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	auth := "master key set"
	if f.MasterKey == "" {
		auth = "no master key: the gateway will run open, on loopback only"
	}
	fmt.Fprintf(stdout, "%s: ok: %d MCP server(s); %s\n", args[1], len(f.Servers), auth)
	return nil
}
