package config

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// tasks is off unless a server lists tools; retention and the open limit
// have defaults and bounds, and every mistake names its field.
func TestTasksSettings(t *testing.T) {
	spec := func(s bus.ServerSpec) bus.ServerSpec {
		s.Name, s.URL = "a", "https://a.example.com/mcp"
		return s
	}
	up, err := Provision(spec(bus.ServerSpec{}), nil)
	if err != nil || up.Tasks != nil {
		t.Fatalf("no tasks: %v %+v", err, up.Tasks)
	}
	up, err = Provision(spec(bus.ServerSpec{Tasks: []string{"*"}}), nil)
	if err != nil || up.Tasks == nil || up.Tasks.Retention != time.Hour || up.Tasks.MaxOpen != 10 {
		t.Fatalf("tasks: [*]: %v %+v", err, up.Tasks)
	}
	up, err = Provision(spec(bus.ServerSpec{Tasks: []string{"report"}, TaskRetention: "90s", TaskMaxOpen: 3}), nil)
	if err != nil || up.Tasks.Retention != 90*time.Second || up.Tasks.MaxOpen != 3 || up.Tasks.Tools[0] != "report" {
		t.Fatalf("tasks with settings: %v %+v", err, up.Tasks)
	}
	for _, c := range []struct {
		spec bus.ServerSpec
		want string
	}{
		{bus.ServerSpec{TaskRetention: "1h"}, "mcp_servers.a.task_retention: needs tasks"},
		{bus.ServerSpec{TaskMaxOpen: 4}, "mcp_servers.a.task_max_open_per_key: needs tasks"},
		{bus.ServerSpec{Tasks: []string{"*"}, TaskRetention: "48h"}, "mcp_servers.a.task_retention: must be more than 0 and at most 24h0m0s"},
		{bus.ServerSpec{Tasks: []string{"*"}, TaskRetention: "soon"}, "mcp_servers.a.task_retention: must be a number of seconds"},
		{bus.ServerSpec{Tasks: []string{"*"}, TaskMaxOpen: 5000}, "mcp_servers.a.task_max_open_per_key: must be at most 1000"},
		{bus.ServerSpec{Tasks: []string{"ok", ""}}, "mcp_servers.a.tasks[1]: must be a tool name"},
	} {
		_, err := Provision(spec(c.spec), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
	cfg, err := Parse("config.yaml", []byte("mcp_servers:\n  a: {url: https://a.example.com/mcp, tasks: [report], task_retention: 2h, task_max_open_per_key: 5}\n"), mapEnv(nil))
	if err != nil || cfg.Servers[0].TaskRetention != "2h0m0s" && cfg.Servers[0].TaskRetention != "2h" || cfg.Servers[0].TaskMaxOpen != 5 {
		t.Fatalf("a config file's tasks: %v %+v", err, cfg)
	}
	if _, err := Parse("config.yaml", []byte("mcp_servers:\n  a: {url: https://a.example.com/mcp, task: [report]}\n"), mapEnv(nil)); err == nil || !strings.Contains(err.Error(), "tasks") {
		t.Fatalf("a misspelled key: %v", err)
	}
}
