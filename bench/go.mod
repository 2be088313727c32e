module github.com/mcpbus/mcpbus/bench

go 1.26.0
