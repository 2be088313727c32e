package bus

// MCP log levels are the syslog severities of RFC 5424, least severe first.
var logLevels = map[string]int{
	"debug": 0, "info": 1, "notice": 2, "warning": 3,
	"error": 4, "critical": 5, "alert": 6, "emergency": 7,
}

// LogLevelRank returns the rank of an MCP log level (debug 0 ... emergency
// 7) and whether it is one.
func LogLevelRank(level string) (int, bool) {
	r, ok := logLevels[level]
	return r, ok
}

// LogLevelAllows reports whether a message at level reaches a session whose
// logging/setLevel level is min. A session that set no level (or an unknown
// one) gets everything; a message whose level is missing or unknown passes.
func LogLevelAllows(min, level string) bool {
	m, ok := LogLevelRank(min)
	if !ok {
		return true
	}
	l, ok := LogLevelRank(level)
	return !ok || l >= m
}
