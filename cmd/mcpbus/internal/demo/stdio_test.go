package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer = bustest.Buffer

func TestRunStdio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inR, inW := io.Pipe()   // client -> server stdin
	outR, outW := io.Pipe() // server stdout -> client
	var stdout, stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--stdio", "--name", "piped"}, inR, io.MultiWriter(outW, &stdout), &stderr)
		outW.Close()
	}()

	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cs.InitializeResult().ServerInfo.Name; got != "piped" {
		t.Errorf("server name = %q", got)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); got != "3" {
		t.Errorf("add = %q", got)
	}
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 0.05, "steps": 2}}
	params.SetProgressToken("p")
	if res, err := cs.CallTool(ctx, params); err != nil || textOf(t, res) != "done after 0.05s" {
		t.Errorf("slow = %+v, %v", res, err)
	}

	// Closing the client closes the server's stdin: Run returns cleanly.
	cs.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second): // only a Run that never returns gets here
		t.Fatal("Run did not return when stdin closed")
	}

	// stdout carried JSON-RPC only; the greeting went to stderr.
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	lines := 0
	for sc.Scan() {
		var m struct {
			JSONRPC string `json:"jsonrpc"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.JSONRPC != "2.0" {
			t.Errorf("non-protocol output on stdout: %q", sc.Text())
		}
		lines++
	}
	if lines < 3 {
		t.Errorf("only %d lines on stdout", lines)
	}
	if !strings.Contains(stderr.String(), `demo upstream "piped" serving MCP on stdio`) {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestRunStdioStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	defer inW.Close()
	done := make(chan error, 1)
	var stderr bustest.Buffer
	go func() { done <- run(ctx, []string{"--stdio"}, inR, io.Discard, &stderr) }()
	bustest.Eventually(t, 30*time.Second, "the demo serves on stdio", func() error {
		if !strings.Contains(stderr.String(), "serving MCP on stdio") {
			return fmt.Errorf("stderr %q", stderr.String())
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second): // only a Run that never stops gets here
		t.Fatal("Run did not stop on cancel")
	}
}

func TestRunStdioRefusesHTTPFlags(t *testing.T) {
	err := Run(context.Background(), []string{"--stdio", "--require-header", "x-api-key: k"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--require-header") {
		t.Errorf("err = %v", err)
	}
}
