package toolworkers

import "github.com/mcpbus/mcpbus/bus"

// levelRank and levelAllows are the bus's (one RFC 5424 order for every service).
var (
	levelRank   = bus.LogLevelRank
	levelAllows = bus.LogLevelAllows
)

// moreVerbose reports whether level a lets more messages through than b
// ("" is no level at all: the least verbose, since the upstream may send
// nothing until a level is set).
func moreVerbose(a, b string) bool {
	ra, okA := levelRank(a)
	if !okA {
		return false
	}
	rb, okB := levelRank(b)
	return !okB || ra < rb
}
