package toolworkers

// MCP log levels are the syslog severities of RFC 5424, least severe first.
var logLevels = map[string]int{
	"debug": 0, "info": 1, "notice": 2, "warning": 3,
	"error": 4, "critical": 5, "alert": 6, "emergency": 7,
}

// levelRank returns the rank of a level and whether it is one.
func levelRank(level string) (int, bool) {
	r, ok := logLevels[level]
	return r, ok
}

// levelAllows reports whether a message at level passes a session whose
// logging/setLevel level is min. A session that set no level gets what the
// upstream sends (the server decides, as the spec says); a message whose level
// is missing or unknown passes.
func levelAllows(min, level string) bool {
	if min == "" {
		return true
	}
	m, ok := levelRank(min)
	if !ok {
		return true
	}
	l, ok := levelRank(level)
	return !ok || l >= m
}

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
