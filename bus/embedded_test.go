package bus

import (
	"net"
	"strings"
	"testing"
)

// A NATS listen port someone else holds fails the start at once, naming
// the address and the way out, instead of nats-server never becoming ready.
func TestEmbeddedListenPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: addr})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a taken port")
	}
	if !strings.Contains(err.Error(), "nats listen address "+addr) || !strings.Contains(err.Error(), "--nats-listen off") {
		t.Fatalf("error %q, want the address and --nats-listen off", err)
	}
}
