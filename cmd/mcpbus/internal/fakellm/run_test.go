package fakellm

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// `mcpbus fake-llm` listens on loopback only, takes its key from the
// environment only, and prints its base URL.
func TestRun(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "loopback"},
		{[]string{"--api-key-env", "MCPBUS_FAKE_LLM_UNSET_FOR_TEST"}, "not set"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		if err := Run(context.Background(), c.args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	t.Setenv("MCPBUS_FAKE_LLM_KEY", testKey)
	ctx, cancel := context.WithCancel(context.Background())
	out := &bustest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--listen", "127.0.0.1:0", "--api-key-env", "MCPBUS_FAKE_LLM_KEY"}, out, io.Discard)
	}()
	defer func() { cancel(); <-done }()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no banner: %q", out.String())
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("models: %v %v", resp, err)
	}
	resp.Body.Close()
}
