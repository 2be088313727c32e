package config

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

func TestAuditSettings(t *testing.T) {
	f, err := Parse("c.yaml", []byte("general_settings:\n  mcp_audit: {enabled: true, arguments: full, max_age: 7d, max_bytes: 512MiB}\n"), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Audit{Enabled: true, Arguments: bus.AuditArgsFull, MaxAge: 7 * 24 * time.Hour, MaxBytes: 512 << 20}
	if f.Audit != want {
		t.Errorf("mcp_audit read as %+v, want %+v", f.Audit, want)
	}
	f, err = Parse("c.yaml", []byte("general_settings:\n  mcp_audit: {enabled: true}\n"), mapEnv(nil))
	if err != nil || f.Audit.Arguments != bus.AuditArgsHash || f.Audit.MaxAge != 0 {
		t.Errorf("defaults: %+v, %v", f.Audit, err)
	}
	if f, _ := Parse("c.yaml", []byte("general_settings: {}\n"), mapEnv(nil)); f.Audit.Enabled {
		t.Error("audit is on without mcp_audit")
	}
	for src, msg := range map[string]string{
		"{enabled: true, argument: full}": "general_settings.mcp_audit.argument: unknown key; did you mean \"arguments\"",
		"{retention: 3d}":                 "general_settings.mcp_audit.retention: unknown key (mcp_audit takes enabled, arguments, max_age, max_bytes)",
		"{arguments: all}":                "general_settings.mcp_audit.arguments: must be hash, full or none",
		"{max_age: soon}":                 "general_settings.mcp_audit.max_age: must be a duration",
		"{max_bytes: 10}":                 "general_settings.mcp_audit.max_bytes: must be a size of 1MiB or more",
		"[on]":                            "general_settings.mcp_audit: must be a mapping",
	} {
		_, err := Parse("c.yaml", []byte("general_settings:\n  mcp_audit: "+src+"\n"), mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("mcp_audit: %s: got %v, want an error containing %q", src, err, msg)
		}
	}
}
