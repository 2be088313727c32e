// Package usagestats summarizes usage events (bus.UsageEvent): rows per
// tool, server, key, team or organization, and a series over time, with
// calls, errors, latency percentiles, tokens and cost. `mcpbus usage top`
// prints the rows; the admin UI charts both.
package usagestats

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// A Group is what a row stands for: the column titles (the second empty
// when a group has one column) and an event's values for them.
type Group struct {
	Titles [2]string
	Of     func(bus.UsageEvent) [2]string
}

// Groups are the rows one may ask for, by name.
var Groups = map[string]Group{
	"tool":   {[2]string{"SERVER", "TOOL"}, func(ev bus.UsageEvent) [2]string { return [2]string{Target(ev), ToolOrMethod(ev)} }},
	"server": {[2]string{"SERVER", ""}, func(ev bus.UsageEvent) [2]string { return [2]string{Target(ev), ""} }},
	"key": {[2]string{"KEY", "TEAM"}, func(ev bus.UsageEvent) [2]string {
		return [2]string{orDash((bus.Identity{KeyID: ev.KeyID, Alias: ev.KeyAlias}).Name()), orDash(ev.Team)}
	}},
	"team": {[2]string{"TEAM", ""}, func(ev bus.UsageEvent) [2]string { return [2]string{orDash(ev.Team), ""} }},
	"org":  {[2]string{"ORG", ""}, func(ev bus.UsageEvent) [2]string { return [2]string{orDash(ev.OrgID), ""} }},
}

// Target names the server of an MCP call, or "a2a/<agent>" for an A2A
// agent's.
func Target(ev bus.UsageEvent) string {
	if ev.Kind == bus.UsageKindAgent {
		return "a2a/" + ev.Server
	}
	return ev.Server
}

// ToolOrMethod names what was called: the tool of a tools/call, the model
// of an LLM call (server _llm), else the method (tool names never contain
// '/').
func ToolOrMethod(ev bus.UsageEvent) string {
	if (ev.Method == bus.MethodToolsCall || ev.Server == bus.LLMUsageServer) && ev.Tool != "" {
		return ev.Tool
	}
	return ev.Method
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Stats are the figures of a row or a point in time. Errors are the
// upstreams' JSON-RPC errors, Failed the gateway's own failures.
type Stats struct {
	Calls  int     `json:"calls"`
	Errors int     `json:"errors"`
	Failed int     `json:"failed"`
	Tokens int     `json:"tokens"`
	Cost   float64 `json:"cost"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
}

// Row is one row of a summary.
type Row struct {
	Name [2]string `json:"name"`
	Stats
}

// Point is one step of a series, from Start.
type Point struct {
	Start time.Time `json:"start"`
	Stats
}

// acc gathers one row's or point's events.
type acc struct {
	Stats
	durations []float64
}

func (a *acc) add(ev bus.UsageEvent) {
	a.Calls++
	switch ev.Status {
	case "error":
		a.Errors++
	case "failed":
		a.Failed++
	}
	a.Cost += ev.Cost
	a.Tokens += ev.PromptTokens + ev.CompletionTokens
	a.durations = append(a.durations, ev.DurationMS)
}

func (a *acc) done() Stats {
	slices.Sort(a.durations)
	a.P50MS = Percentile(a.durations, 0.50)
	a.P95MS = Percentile(a.durations, 0.95)
	a.P99MS = Percentile(a.durations, 0.99)
	return a.Stats
}

// Summarize is one row per value of g, most calls first (then by name),
// and the total.
func Summarize(events []bus.UsageEvent, g Group) (rows []Row, total Row) {
	accs := map[[2]string]*acc{}
	var all acc
	for _, ev := range events {
		k := g.Of(ev)
		a := accs[k]
		if a == nil {
			a = &acc{}
			accs[k] = a
		}
		a.add(ev)
		all.add(ev)
	}
	for k, a := range accs {
		rows = append(rows, Row{Name: k, Stats: a.done()})
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Calls != b.Calls {
			return a.Calls > b.Calls
		}
		if a.Name[0] != b.Name[0] {
			return a.Name[0] < b.Name[0]
		}
		return a.Name[1] < b.Name[1]
	})
	return rows, Row{Name: [2]string{"TOTAL", ""}, Stats: all.done()}
}

// Series is the events' figures per step from from to to (every step, with
// or without events); events outside are left out.
func Series(events []bus.UsageEvent, from, to time.Time, step time.Duration) []Point {
	if step <= 0 || !to.After(from) {
		return nil
	}
	n := int((to.Sub(from) + step - 1) / step)
	accs := make([]acc, n)
	for _, ev := range events {
		if ev.Time.Before(from) || !ev.Time.Before(to) {
			continue
		}
		accs[int(ev.Time.Sub(from)/step)].add(ev)
	}
	out := make([]Point, n)
	for i := range accs {
		out[i] = Point{Start: from.Add(time.Duration(i) * step), Stats: accs[i].done()}
	}
	return out
}

// Percentile is the nearest-rank q-quantile of sorted values (0 when empty).
func Percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
