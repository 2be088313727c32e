// Package version holds the one version string of mcpbus: what `mcpbus
// version` prints, what every micro service (auth, registry, router, tool
// workers) reports in its service info, what the router's initialize answer
// and the workers' clientInfo name, and what registry.json shows.
//
// It is a variable so that a release build can stamp it at link time:
//
//	go build -ldflags "-X github.com/mcpbus/mcpbus/bus/version.Version=1.2.3" .
//
// (`make build VERSION=1.2.3` does this). Without the flag it is the default
// below. Services that take an Options.Version use it only when that field
// is empty.
package version

// Version of mcpbus. Set by -ldflags -X for release builds; read it, do not
// assign it at run time.
var Version = "0.1.0"
