package ingress

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/usagestats"
)

// The admin UI's usage: figures over time and per key, team, organization,
// server or tool (GET /ui/api/usage; key=, team=, org= and server= narrow
// it), and the calls as they happen (GET
// /ui/api/usage/tail, an event stream), read from the usage stream. The
// master key sees every call, an organization's admin its organization's,
// any other key its own.

const (
	// uiUsageMaxEvents bounds the events one summary reads; past it the
	// answer says truncated.
	uiUsageMaxEvents = 200_000
	// uiUsageMaxRange is the furthest back a summary goes, uiUsageMaxPoints
	// the most points of its series.
	uiUsageMaxRange  = 7 * 24 * time.Hour
	uiUsageMaxPoints = 1440
	uiUsageTimeout   = 20 * time.Second
	// uiReverify is how often a live stream checks its key is still valid.
	uiReverify = 15 * time.Second
)

// uiUsageAnswer is GET /ui/api/usage's answer.
type uiUsageAnswer struct {
	From      time.Time          `json:"from"`
	To        time.Time          `json:"to"`
	Step      float64            `json:"step_seconds"`
	By        string             `json:"by"`
	Titles    [2]string          `json:"titles"`
	Series    []usagestats.Point `json:"series"`
	Rows      []usagestats.Row   `json:"rows"`
	Total     usagestats.Row     `json:"total"`
	Scope     string             `json:"scope"` // "all", "organization <id>" or "key <name>"
	Truncated bool               `json:"truncated,omitempty"`
}

// usageScope is what part of the usage a caller may read.
type usageScope struct {
	all        bool
	org, keyID string
	name       string
}

func scopeOf(id bus.Identity) usageScope {
	switch {
	case id.Admin:
		return usageScope{all: true, name: "all"}
	case id.OrgAdmin != "":
		return usageScope{org: id.OrgAdmin, name: "organization " + id.OrgAdmin}
	}
	return usageScope{keyID: id.KeyID, name: "key " + id.Name()}
}

func (s usageScope) admits(ev bus.UsageEvent) bool {
	return s.all || (s.org != "" && ev.OrgID == s.org) || (s.keyID != "" && ev.KeyID == s.keyID)
}

// usageFilter narrows a summary to one key, team or organization.
type usageFilter struct{ key, team, org string }

func (f usageFilter) check() *bus.Error {
	if f.key != "" && (len(f.key) != 64 || strings.Trim(f.key, "0123456789abcdef") != "") {
		return bus.Errorf(bus.ErrBadRequest, "key: a key's token (64 hex digits, as /key/list answers), not the key")
	}
	for name, v := range map[string]string{"team": f.team, "org": f.org} {
		if v != "" && !bus.ValidToken(v) {
			return bus.Errorf(bus.ErrBadRequest, "%s: %q is not an id", name, bus.Shorten(v, 64))
		}
	}
	return nil
}

func (f usageFilter) admits(ev bus.UsageEvent) bool {
	return (f.key == "" || ev.KeyID == f.key) && (f.team == "" || ev.Team == f.team) && (f.org == "" || ev.OrgID == f.org)
}

// parseSpan reads a span: a Go duration ("90m") or whole days ("7d").
func parseSpan(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a span (10m, 2h, 7d)", bus.Shorten(s, 16))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a span (10m, 2h, 7d)", bus.Shorten(s, 16))
	}
	return v, nil
}

func (g *Ingress) serveUIUsage(w http.ResponseWriter, r *http.Request) {
	id, ok := g.uiGet(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	since, step := orDefault(q.Get("since"), "1h"), orDefault(q.Get("step"), "")
	span, err := parseSpan(since)
	if err != nil || span > uiUsageMaxRange {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "since: %s", orText(err, "at most 7d")))
		return
	}
	stepD := span / 60
	if step != "" {
		if stepD, err = parseSpan(step); err != nil {
			writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "step: %v", err))
			return
		}
	}
	stepD = max(stepD, time.Second)
	if int(span/stepD) > uiUsageMaxPoints {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "step: %s over %s is more than %d points", stepD, since, uiUsageMaxPoints))
		return
	}
	by := orDefault(q.Get("by"), "server")
	group, ok := usagestats.Groups[by]
	if !ok {
		writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "by: %q: want tool, server, key, team or org", bus.Shorten(by, 16)))
		return
	}
	filter := bus.SubjectUsageAll
	if s := q.Get("server"); s != "" {
		if !bus.ValidToken(s) {
			writeRESTError(w, bus.Errorf(bus.ErrBadRequest, "server: %q is not a server name", bus.Shorten(s, 64)))
			return
		}
		filter = bus.UsageFilter("", s, "")
	}
	scope := scopeOf(id)
	// Narrowing within the scope: one key (its token), team or organization.
	only := usageFilter{key: q.Get("key"), team: q.Get("team"), org: q.Get("org")}
	if e := only.check(); e != nil {
		writeRESTError(w, e)
		return
	}
	to := time.Now().UTC().Truncate(stepD).Add(stepD)
	from := to.Add(-span).Truncate(stepD)
	ctx, cancel := context.WithTimeout(r.Context(), uiUsageTimeout)
	defer cancel()
	var events []bus.UsageEvent
	truncated := false
	errFull := fmt.Errorf("full")
	err = bus.ReadUsage(ctx, g.nc, filter, bus.UsageStart{Time: &from}, false, func(m bus.UsageMsg) error {
		var ev bus.UsageEvent
		if json.Unmarshal(m.Data, &ev) != nil || !scope.admits(ev) || !only.admits(ev) {
			return nil
		}
		if len(events) == uiUsageMaxEvents {
			truncated = true
			return errFull
		}
		events = append(events, ev)
		return nil
	})
	if err != nil && err != errFull {
		writeRESTError(w, bus.Errorf(bus.ErrServiceUnavailable, "cannot read the usage stream now: %v", err))
		return
	}
	rows, total := usagestats.Summarize(events, group)
	ans := uiUsageAnswer{From: from, To: to, Step: stepD.Seconds(), By: by, Titles: group.Titles,
		Series: usagestats.Series(events, from, to, stepD), Rows: rows, Total: total, Scope: scope.name, Truncated: truncated}
	data, _ := json.Marshal(ans)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, data)
}

// serveUIUsageTail streams the caller's calls as they are recorded: one
// "event: call" with the usage event as its data, each.
func (g *Ingress) serveUIUsageTail(w http.ResponseWriter, r *http.Request) {
	id, ok := g.uiGet(w, r)
	if !ok {
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeRESTError(w, bus.Errorf(bus.ErrInternal, "this server cannot stream events"))
		return
	}
	scope := scopeOf(id)
	// The stream ends when the caller's key stops being valid.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		tick := time.NewTicker(uiReverify)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, e := g.verify(r); e != nil {
					cancel()
					return
				}
			}
		}
	}()
	startUIStream(w, fl, "mcpbus usage")
	err := bus.ReadUsage(ctx, g.nc, bus.SubjectUsageAll, bus.UsageStart{New: true}, true, func(m bus.UsageMsg) error {
		var ev bus.UsageEvent
		if json.Unmarshal(m.Data, &ev) != nil || !scope.admits(ev) {
			return nil
		}
		data, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "event: call\ndata: %s\n\n", data); err != nil {
			return err
		}
		fl.Flush()
		return nil
	})
	if err != nil && ctx.Err() == nil {
		g.log.Warn("UI usage tail ended", "err", err)
	}
}

func orDefault(s, def string) string {
	if s = strings.TrimSpace(s); s == "" {
		return def
	}
	return s
}

func orText(err error, text string) string {
	if err != nil {
		return err.Error()
	}
	return text
}
