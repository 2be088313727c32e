package ociimage

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// deploy/image/Dockerfile builds, from source, the image Write makes from a
// binary: the same user, paths, command, port, volume and health check.
func TestDockerfileMatchesImage(t *testing.T) {
	b, err := os.ReadFile("../../../../deploy/image/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	c := DefaultConfig("x")
	exec := func(v []string) string { j, _ := json.Marshal(v); return strings.ReplaceAll(string(j), `","`, `", "`) }
	want := []string{
		"FROM scratch",
		"USER " + c.User,
		"WORKDIR " + c.WorkingDir,
		"VOLUME " + DataDir,
		"EXPOSE 4000",
		"ENTRYPOINT " + exec(c.Entrypoint),
		"CMD " + exec(c.Cmd),
		"ENV " + strings.Join(c.Env, " "),
		fmt.Sprintf("--interval=%s --timeout=%s --start-period=%s --retries=%d CMD %s", c.Healthcheck.Interval,
			c.Healthcheck.Timeout, c.Healthcheck.StartPeriod, c.Healthcheck.Retries, exec(c.Healthcheck.Test[1:])),
		"/out/mcpbus " + BinaryPath,
		"ca-certificates.crt " + CAPath,
		fmt.Sprintf("--chown=%d:%d --chmod=700 /out/data %s", UID, UID, DataDir),
		"CGO_ENABLED=0",
	}
	for _, w := range want {
		if !strings.Contains(df, w) {
			t.Errorf("the Dockerfile lacks %q", w)
		}
	}
	if regexp.MustCompile(`(?m)^USER\s+(0|root)\b`).MatchString(df) {
		t.Error("the Dockerfile runs as root")
	}
}
