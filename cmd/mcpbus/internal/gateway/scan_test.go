package gateway

import (
	"fmt"
	"os"
	"strings"
	"sync"
)

// The suite-wide secret scan: every response body the tests receive and every
// line every gateway logs is kept, and TestMain fails the run if any secret a
// test used appears in any of them.
var scan struct {
	mu      sync.Mutex
	secrets map[string]bool
	bodies  []string
	logs    []*syncBuffer
}

// registerSecret adds values that must never appear in a response or a log.
func registerSecret(values ...string) {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	if scan.secrets == nil {
		scan.secrets = map[string]bool{}
	}
	for _, v := range values {
		if len(v) >= 6 {
			scan.secrets[v] = true
		}
	}
}

func recordBody(b []byte) {
	scan.mu.Lock()
	scan.bodies = append(scan.bodies, string(b))
	scan.mu.Unlock()
}

func recordLogs(l *syncBuffer) {
	scan.mu.Lock()
	scan.logs = append(scan.logs, l)
	scan.mu.Unlock()
}

// scanForSecrets returns a description of every leak found.
func scanForSecrets() []string {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	var leaks []string
	for secret := range scan.secrets {
		for i, b := range scan.bodies {
			if strings.Contains(b, secret) {
				leaks = append(leaks, fmt.Sprintf("response body #%d contains a secret (%.4s…)", i, secret))
			}
		}
		for i, l := range scan.logs {
			if strings.Contains(l.String(), secret) {
				leaks = append(leaks, fmt.Sprintf("gateway log #%d contains a secret (%.4s…)", i, secret))
			}
		}
	}
	return leaks
}

// scanForViolations returns every bus permission violation a gateway
// logged: each service's user may use only its own subjects
// (bus/natsauth.go), so a violation is a service that would fail in
// production (its request dropped) or a permission table gone stale.
func scanForViolations() []string {
	scan.mu.Lock()
	defer scan.mu.Unlock()
	var out []string
	for i, l := range scan.logs {
		for _, line := range strings.Split(l.String(), "\n") {
			if strings.Contains(strings.ToLower(line), "permissions violation") && !strings.Contains(line, "test-intruder") {
				out = append(out, fmt.Sprintf("gateway log #%d: %s", i, line))
			}
		}
	}
	return out
}

func runScan(code int) int {
	if v := scanForViolations(); len(v) > 0 {
		fmt.Fprintln(os.Stderr, "BUS PERMISSION VIOLATIONS:\n  "+strings.Join(v, "\n  "))
		return 1
	}
	leaks := scanForSecrets()
	scan.mu.Lock()
	n, b, l := len(scan.secrets), len(scan.bodies), len(scan.logs)
	scan.mu.Unlock()
	if len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "SECRET SCAN FAILED:\n  "+strings.Join(leaks, "\n  "))
		return 1
	}
	fmt.Printf("secret scan: %d secrets, %d response bodies, %d gateway logs: clean\n", n, b, l)
	return code
}
