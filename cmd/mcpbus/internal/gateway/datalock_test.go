package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/config"
)

// A second gateway on the data directory of a running one refuses to start,
// naming the directory and the holder's pid, and leaves the first one's
// servers alone; once the first stops, the directory is free again.
func TestDataDirectoryServesOneGateway(t *testing.T) {
	a, _ := upstream(t, "a")
	dir := t.TempDir()
	first := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}}\n", master, a), nil,
		func(o *Options) { o.DataDir = dir })

	cfg, err := config.Parse("config.yaml", []byte("general_settings: {master_key: "+master+"}\nmcp_servers: {}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: dir, NATSListen: "off", Log: slog.New(slog.DiscardHandler)}
	if g, err := Start(context.Background(), o); err == nil {
		g.Close(context.Background())
		t.Fatal("a second gateway started on a data directory in use")
	} else if !strings.Contains(err.Error(), "is in use by another mcpbus (pid "+fmt.Sprint(os.Getpid())+")") || !strings.Contains(err.Error(), "--data") {
		t.Fatalf("second gateway: %v", err)
	}
	// The first still serves a.
	h := initSession(t, first.URL()+"/mcp/a", bearer(master))
	if r := post(t, first.URL()+"/mcp/a", h, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"still a"}}`)); !strings.Contains(string(r.body), "still a") {
		t.Fatalf("the first gateway after the second tried: %s", r.body)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	g.Close(context.Background())
}
