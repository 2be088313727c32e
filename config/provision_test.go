package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

func TestProvisionDefaults(t *testing.T) {
	up, err := Provision(bus.ServerSpec{Name: "a", URL: "http://a.internal/mcp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if up.Transport != "http" || up.AuthType != "none" || up.SpecVersion != "" ||
		up.Timeout != 60*time.Second || up.Public || len(up.Header) != 0 || up.Prefix() != "a" {
		t.Errorf("defaults: %#v", up)
	}
}

func TestProvisionStaticHeadersWin(t *testing.T) {
	up, err := Provision(bus.ServerSpec{
		Name: "a", Alias: "alpha", URL: "https://a.example.com/mcp",
		AuthType: "bearer_token", AuthValue: "t",
		StaticHeaders: map[string]string{"authorization": "Static s", "X-Tenant": "acme"},
		ExtraHeaders:  []string{"x-user-id"},
		Timeout:       "90s",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, "merge", up.Header, map[string]string{"Authorization": "Static s", "X-Tenant": "acme"})
	if len(up.ExtraHeaders) != 1 || up.ExtraHeaders[0] != "X-User-Id" {
		t.Errorf("extra headers %q", up.ExtraHeaders)
	}
	if up.Timeout != 90*time.Second || up.Prefix() != "alpha" {
		t.Errorf("timeout %v prefix %q", up.Timeout, up.Prefix())
	}
}

func TestProvisionErrorsNameFields(t *testing.T) {
	_, err := Provision(bus.ServerSpec{Name: "gh", URL: "https://gh.example.com", AuthType: "basic",
		Transport: "stdio", Timeout: "os.environ/T"}, mapEnv(map[string]string{"T": "forever"}))
	want := "mcp_servers.gh.timeout: " + timeoutSyntax
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = Provision(bus.ServerSpec{Name: "gh", URL: "https://gh.example.com", AuthType: "basic", Transport: "stdio"}, nil)
	want = "mcp_servers.gh.command: required when transport is stdio" // no auth_value: each request brings it
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// A stateless-era revision pinned on a server mcpbus speaks only the
	// session era to.
	_, err = Provision(bus.ServerSpec{Name: "gh", URL: "https://gh.example.com/sse", Transport: "sse", SpecVersion: "2026-07-28"}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "mcp_servers.gh.spec_version: names a stateless-era revision") || !strings.Contains(err.Error(), "transport http") {
		t.Errorf("spec_version 2026-07-28 with transport sse: %v", err)
	}
	for _, ok := range []bus.ServerSpec{
		{Name: "gh", URL: "https://gh.example.com/mcp", Transport: "http", SpecVersion: "2026-07-28"},
		{Name: "gh", URL: "https://gh.example.com/mcp", SpecVersion: "2026-07-28"}, // detected: Streamable HTTP first
		{Name: "gh", URL: "https://gh.example.com/sse", Transport: "sse", SpecVersion: "2025-06-18"},
	} {
		if _, err := Provision(ok, nil); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestUpstreamPrintsNoCredentials(t *testing.T) {
	up, err := Provision(bus.ServerSpec{
		Name: "a", URL: "https://user:SECRET-pw@a.example.com/mcp?key=SECRET-q",
		AuthType: "bearer_token", AuthValue: "SECRET-token",
		StaticHeaders: map[string]string{"X-Key": "SECRET-static"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("up", "upstream", up)
	for _, s := range []string{up.String(), fmt.Sprint(up), fmt.Sprintf("%v %+v %#v %s", *up, up, up, up), logged.String()} {
		if strings.Contains(s, secretMarker) {
			t.Errorf("leaks a credential: %s", s)
		}
	}
	if !strings.Contains(up.String(), "Authorization X-Key") {
		t.Errorf("String should list header names: %s", up)
	}
}
