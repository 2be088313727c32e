package usagestats

import (
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

func TestSummarizeAndSeries(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	ev := func(min int, server, tool, status string, ms, cost float64) bus.UsageEvent {
		return bus.UsageEvent{Time: t0.Add(time.Duration(min) * time.Minute), Server: server, Tool: tool, Method: bus.MethodToolsCall,
			Status: status, DurationMS: ms, Cost: cost, Team: "t1"}
	}
	events := []bus.UsageEvent{
		ev(0, "docs", "echo", "ok", 10, 0.01), ev(1, "docs", "echo", "error", 30, 0),
		ev(1, "docs", "add", "ok", 20, 0.02), ev(5, "git", "log", "failed", 100, 0),
	}
	rows, total := Summarize(events, Groups["server"])
	if len(rows) != 2 || rows[0].Name[0] != "docs" || rows[0].Calls != 3 || rows[0].Errors != 1 || rows[0].P50MS != 20 || rows[0].P99MS != 30 {
		t.Fatalf("rows %+v", rows)
	}
	if rows[1].Name[0] != "git" || rows[1].Failed != 1 || total.Calls != 4 || total.Cost != 0.03 || total.P95MS != 100 {
		t.Fatalf("git %+v, total %+v", rows[1], total)
	}
	pts := Series(events, t0, t0.Add(6*time.Minute), 2*time.Minute)
	if len(pts) != 3 || pts[0].Calls != 3 || pts[0].Errors != 1 || pts[1].Calls != 0 || pts[2].Calls != 1 || pts[2].Failed != 1 || !pts[2].Start.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("series %+v", pts)
	}
	if Series(events, t0, t0, time.Minute) != nil {
		t.Fatal("an empty range has points")
	}
}
