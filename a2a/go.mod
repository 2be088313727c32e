module github.com/mcpbus/mcpbus/a2a

go 1.26.0

require (
	github.com/mcpbus/mcpbus/bus v0.0.0
	github.com/mcpbus/mcpbus/config v0.0.0
	github.com/mcpbus/mcpbus/internal v0.0.0
	github.com/mcpbus/mcpbus/toolworkers v0.0.0
	github.com/nats-io/nats.go v1.55.0
)
