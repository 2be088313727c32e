package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The dashboard example of docs/USAGE.md, kept here so it compiles and runs;
// TestUsageDocExample checks the doc shows exactly this code.

// --- docs/USAGE.md example begins ---

// usageEvent holds the fields of a usage event this dashboard uses.
type usageEvent struct {
	Time   time.Time `json:"time"`
	Team   string    `json:"team_id"`
	Server string    `json:"server"`
	Tool   string    `json:"tool"`
	Status string    `json:"status"`
	Cost   float64   `json:"cost"`
}

// watchCosts prints every call to server github and its team's running cost
// until ctx ends, reading as a bus user with the usage role.
func watchCosts(ctx context.Context, natsURL, user, password string, out io.Writer) error {
	nc, err := nats.Connect(natsURL, nats.UserInfo(user, password),
		nats.CustomInboxPrefix("_INBOX_"+user)) // the replies a bus user may receive
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	stream, err := js.Stream(ctx, "MCPBUS_USAGE")
	if err != nil {
		return err
	}
	costByTeam := map[string]float64{}
	// The dashboard keeps its own position (save seq to resume after a
	// restart): the usage role reads with gets, it creates no consumer.
	for seq := uint64(1); ctx.Err() == nil; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("mcpbus.v1.usage.*.github.*")) // server github, any team, any tool
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			select { // nothing newer yet
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		seq = m.Sequence + 1
		var ev usageEvent
		if err := json.Unmarshal(m.Data, &ev); err == nil {
			costByTeam[ev.Team] += ev.Cost
			fmt.Fprintf(out, "%s %s/%s %s team=%s team_cost=%.2f\n",
				ev.Time.Format(time.RFC3339), ev.Server, ev.Tool, ev.Status, ev.Team, costByTeam[ev.Team])
		}
	}
	return nil
}

// --- docs/USAGE.md example ends ---

func TestUsageDocExample(t *testing.T) {
	src, err := os.ReadFile("usage_doc_test.go")
	if err != nil {
		t.Fatal(err)
	}
	code := string(src)
	code = code[strings.Index(code, "// --- docs/USAGE.md example begins ---\n\n")+len("// --- docs/USAGE.md example begins ---\n\n"):]
	code = code[:strings.Index(code, "\n// --- docs/USAGE.md example ends ---")]
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "USAGE.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+code+"```\n") {
		t.Fatalf("docs/USAGE.md does not show the example as it is in usage_doc_test.go:\n%s", code)
	}

	url, publish := usageServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuf{}
	done := make(chan error, 1)
	go func() {
		done <- watchCosts(ctx, url, os.Getenv("MCPBUS_NATS_USER"), os.Getenv("MCPBUS_NATS_PASSWORD"), out)
	}()
	publish(ev("a", "github", "search", "tools/call", "ok", 1, 0.05), ev("b", "jira", "x", "tools/call", "ok", 1, 1),
		ev("c", "github", "search", "tools/call", "ok", 1, 0.05))
	want := "2025-06-01T12:00:00Z github/search ok team=t1 team_cost=0.05\n" +
		"2025-06-01T12:00:00Z github/search ok team=t1 team_cost=0.10\n"
	awaitOutput(out, want)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("dashboard printed:\n%s\nwant:\n%s", out, want)
	}
}
