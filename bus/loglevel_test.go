package bus

import "testing"

func TestLogLevelAllows(t *testing.T) {
	for _, tc := range []struct {
		min, level string
		want       bool
	}{
		{"", "debug", true},           // no level set: everything
		{"warning", "error", true},    // more severe passes
		{"warning", "warning", true},  // equal passes
		{"warning", "info", false},    // less severe is held back
		{"emergency", "alert", false}, // the top of the order
		{"bogus", "debug", true},      // an unknown session level filters nothing
		{"error", "", true},           // a message without a level passes
	} {
		if got := LogLevelAllows(tc.min, tc.level); got != tc.want {
			t.Errorf("LogLevelAllows(%q, %q) = %v, want %v", tc.min, tc.level, got, tc.want)
		}
	}
}
