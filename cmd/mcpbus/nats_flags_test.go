package main

import (
	"strings"
	"testing"
)

// The flags that say how to join an external NATS are refused without one,
// rather than ignored.
func TestNATSSecurityFlagsNeedNATS(t *testing.T) {
	code, _, errOut := runCLI("serve", "--config", "testdata/none.yaml", "--nats-tls-ca", "/tmp/ca.pem")
	if code != 1 || !strings.Contains(errOut, "give --nats URL") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}
