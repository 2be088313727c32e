package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// `mcpbus health` exits 0 on a 200 and 1 otherwise, saying what answered; its
// default target comes from MCPBUS_HEALTH_URL, as an image's HEALTHCHECK
// runs it without arguments.
func TestHealthCommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/liveliness" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(`{"status":"healthy"}`))
	}))
	defer srv.Close()

	code, out, errOut := runCLI("health", "--url", srv.URL+"/health/liveliness")
	if code != 0 || !strings.Contains(out, `"status":"healthy"`) {
		t.Fatalf("healthy: exit %d, %q %q", code, out, errOut)
	}
	t.Setenv(healthEnv, srv.URL+"/health/liveliness")
	if code, _, errOut := runCLI("health"); code != 0 {
		t.Fatalf("from %s: exit %d, %q", healthEnv, code, errOut)
	}
	status = http.StatusServiceUnavailable
	if code, _, errOut := runCLI("health"); code != 1 || !strings.Contains(errOut, "503") {
		t.Fatalf("unhealthy: exit %d, %q", code, errOut)
	}
	srv.Close()
	if code, _, errOut := runCLI("health"); code != 1 || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("nothing listening: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runCLI("health", "--url", "ftp://x"); code != 1 || !strings.Contains(errOut, "not an http(s) URL") {
		t.Fatalf("bad URL: exit %d, %q", code, errOut)
	}
}
