package config

import (
	"fmt"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Tasks is a server's durable tool calls (bus/tasks.go, docs/TASKS.md):
// which tools a client may run as tasks, how long a task is kept, and how
// many unfinished tasks one caller may have on the server.
type Tasks struct {
	Tools     []string
	Retention time.Duration
	MaxOpen   int
}

// maxTaskMaxOpen bounds task_max_open_per_key (each open task holds a
// goroutine and, while it runs, an upstream call).
const maxTaskMaxOpen = 1000

// checkTasks reads the task fields of spec: nil when tasks is empty (off);
// errors name mcp_servers.<name>.<field>.
func checkTasks(base string, spec bus.ServerSpec) (*Tasks, Errors) {
	var errs Errors
	if len(spec.Tasks) == 0 {
		for field, set := range map[string]bool{"task_retention": spec.TaskRetention != "", "task_max_open_per_key": spec.TaskMaxOpen != 0} {
			if set {
				errs = append(errs, FieldError{base + "." + field, "needs tasks (the tools that may run as tasks, or \"*\"); without it tasks are off"})
			}
		}
		return nil, errs
	}
	for i, tool := range spec.Tasks {
		if tool == "" || len(tool) > bus.MaxPinToolLen || !bus.ValidHeaderValue(tool) {
			errs = append(errs, FieldError{fmt.Sprintf("%s.tasks[%d]", base, i), fmt.Sprintf("must be a tool name (1-%d bytes of text) or \"*\" (every tool)", bus.MaxPinToolLen)})
		}
	}
	t := &Tasks{Tools: spec.Tasks, Retention: bus.DefaultTaskRetention, MaxOpen: bus.DefaultTaskMaxOpen}
	if spec.TaskRetention != "" {
		d, err := parseTimeout(spec.TaskRetention)
		switch {
		case err != nil:
			errs = append(errs, FieldError{base + ".task_retention", timeoutSyntax})
		case d <= 0 || d > bus.MaxTaskRetention:
			errs = append(errs, FieldError{base + ".task_retention", fmt.Sprintf("must be more than 0 and at most %s (the tasks bucket keeps nothing longer)", bus.MaxTaskRetention)})
		default:
			t.Retention = d
		}
	}
	if spec.TaskMaxOpen > maxTaskMaxOpen {
		errs = append(errs, FieldError{base + ".task_max_open_per_key", fmt.Sprintf("must be at most %d", maxTaskMaxOpen)})
	} else if spec.TaskMaxOpen > 0 {
		t.MaxOpen = spec.TaskMaxOpen
	}
	return t, errs
}
