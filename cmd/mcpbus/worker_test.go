package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// echoVia calls the demo upstream's echo tool through the worker subject.
func echoVia(nc *nats.Conn, server, text string) (string, error) {
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + text + `"}}}`
	msg, err := nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC(server), Data: []byte(body), Header: bustest.InternalCaller()}, 5*time.Second)
	if err != nil {
		return "", err
	}
	if e := bus.ReplyError(msg); e != nil {
		return "", e
	}
	return string(msg.Data), nil
}

// demoRegistry is a NATS server with the servers bucket, and put, which
// writes a record there for a demo upstream under the given name.
func demoRegistry(t *testing.T) (*server.Server, *nats.Conn, func(name string)) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	js, _ := jetstream.New(nc)
	kv, err := bus.ServersBucket(context.Background(), js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(demo.Handler("demo"))
	t.Cleanup(up.Close)
	return ns, nc, func(name string) {
		data, _ := json.Marshal(bus.ServerSpec{Name: name, URL: up.URL + "/mcp", Source: "api"})
		if _, err := kv.Put(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
	}
}

// `mcpbus worker` joins an external NATS, hosts the servers it is given as
// their records come and go, and stops cleanly when its context ends.
func TestWorkerCommand(t *testing.T) {
	ns, nc, put := demoRegistry(t)
	put("demo")
	put("elsewhere")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- workerCmd(ctx, []string{"--nats", ns.ClientURL(), "--servers", "demo, late", "--log-format", "json"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	if !strings.HasPrefix(line, "mcpbus worker ready on nats://127.0.0.1:") || !strings.Contains(line, "servers demo,late (1 running now)") {
		t.Fatalf("ready line = %q", line)
	}
	if got, err := echoVia(nc, "demo", "hello"); err != nil || !strings.Contains(got, "hello") {
		t.Fatalf("demo: %s %v", got, err)
	}
	if _, err := echoVia(nc, "elsewhere", "x"); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("a server outside --servers got a worker: %v", err)
	}
	// A record written while it runs is picked up.
	put("late")
	bustest.Eventually(t, 30*time.Second, "a new record is served", func() error {
		if got, err := echoVia(nc, "late", "again"); err != nil || !strings.Contains(got, "again") {
			return fmt.Errorf("late answered %q, %v", got, err)
		}
		return nil
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop within 10s of cancel")
	}
	for _, s := range []string{"demo", "late"} {
		if _, err := echoVia(nc, s, "x"); !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("%s still answers after the worker stopped: %v", s, err)
		}
	}
}

func TestWorkerCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--servers", " , "}, "names no server"},
		{[]string{"--nats", "nats://127.0.0.1:1"}, "connect to NATS"},
		{[]string{"--log-format", "xml", "--nats", "nats://127.0.0.1:1"}, "--log-format"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		err := workerCmd(context.Background(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("worker %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
