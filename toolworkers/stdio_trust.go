package toolworkers

import (
	"errors"
	"maps"
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// namedByConfig is the one rule for running a command: a stdio server runs
// on this host only if this process's own config file names it, with this
// command, these arguments and this environment (as written, before
// os.environ/ references are resolved). A record's "source" field is not
// trusted: anyone who could write the servers bucket could set it. So a
// record made over the API, or written to the bus by anyone else, cannot make
// a worker start a process the operator did not write down, unless the
// operator turned on mcp_allow_stdio_servers_from_api (Options.AllowAPIStdio).
func namedByConfig(spec bus.ServerSpec, file []bus.ServerSpec) error {
	for _, c := range file {
		if c.Name != spec.Name {
			continue
		}
		if c.Transport != "stdio" {
			break
		}
		// The file's canary is named too: promoting it makes it the command.
		named := (c.Command == spec.Command && slices.Equal(c.Args, spec.Args)) ||
			(c.CanaryCommand != "" && c.CanaryCommand == spec.Command && slices.Equal(c.CanaryArgs, spec.Args))
		if named && maps.Equal(orEmpty(c.Env), orEmpty(spec.Env)) {
			return nil
		}
		return errors.New("stdio servers run a command on this host, and this record's command, args or env differ from what this process's config file names for it (mcp_allow_stdio_servers_from_api allows commands from the API)")
	}
	return errors.New("stdio servers run a command on this host, so only this process's config file may name one, and it names no such stdio server (mcp_allow_stdio_servers_from_api allows commands from the API)")
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
