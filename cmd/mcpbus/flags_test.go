package main

import (
	"strings"
	"testing"
)

// Asking any command for help prints it on stdout and exits 0, naming the
// command asked (not another it runs as).
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usage"},
		{[]string{"serve", "--help"}, "Usage of serve"},
		{[]string{"serve", "-h"}, "-config"},
		{[]string{"auth", "--help"}, "Usage of auth"},
		{[]string{"router", "-h"}, "Usage of router"},
		{[]string{"worker", "--help"}, "Usage of worker"},
		{[]string{"keys", "--help"}, "keys create"},
		{[]string{"keys", "create", "--help"}, "Usage of keys create"},
		{[]string{"keys", "list", "-h"}, "Usage of keys list"},
		{[]string{"keys", "revoke", "--help"}, "Usage of keys revoke"},
		{[]string{"usage", "--help"}, "usage tail"},
		{[]string{"usage", "tail", "--help"}, "Usage of usage tail"},
		{[]string{"usage", "top", "--help"}, "Usage of usage top"},
		{[]string{"config", "--help"}, "config check FILE"},
		{[]string{"config", "check", "--help"}, "config check FILE"},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != 0 || !strings.Contains(stdout, tc.want) || strings.Contains(stdout+stderr, "help requested") {
			t.Errorf("mcpbus %s: exit %d, stdout %q, stderr %q; want 0 and %q on stdout",
				strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
	// A mistake is still one: exit 1, on stderr.
	if code, _, stderr := runCLI("serve", "--no-such-flag"); code == 0 || !strings.Contains(stderr, "no-such-flag") {
		t.Errorf("serve --no-such-flag: exit %d, stderr %q", code, stderr)
	}
}
