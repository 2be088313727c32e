package main

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
)

// The flags that say how to join an external NATS are refused without one,
// rather than ignored.
func TestNATSSecurityFlagsNeedNATS(t *testing.T) {
	code, _, errOut := runCLI("serve", "--config", "testdata/none.yaml", "--nats-tls-ca", "/tmp/ca.pem")
	if code != 1 || !strings.Contains(errOut, "give --nats URL") {
		t.Fatalf("exit %d, %q", code, errOut)
	}
}

// The flags win over the config file's nats_* settings, field by field, and
// a flag that names who joins drops the file's way of joining.
func TestNATSJoinPrecedence(t *testing.T) {
	file := config.NATSJoin{Creds: "/file/x.creds", TLSCA: "/file/ca.pem", TLSCert: "/file/c.pem", TLSKey: "/file/k.pem"}
	o := natsJoin(natsnode.ConnectOptions{TLSCA: "/flag/ca.pem"}, file)
	if o.CredsFile != "/file/x.creds" || o.TLSCA != "/flag/ca.pem" || o.TLSCert != "/file/c.pem" {
		t.Errorf("flag CA over the file: %+v", o)
	}
	o = natsJoin(natsnode.ConnectOptions{NKeyFile: "/flag/seed"}, file)
	if o.NKeyFile != "/flag/seed" || o.CredsFile != "" {
		t.Errorf("flag nkey drops the file's creds: %+v", o)
	}
}
