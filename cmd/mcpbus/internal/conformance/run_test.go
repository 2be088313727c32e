package conformance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--listen", "127.0.0.1:0", "--watch-interval", "0"}, &out, io.Discard)
	}()

	re := regexp.MustCompile(`^conformance fixture listening on (http://127\.0\.0\.1:\d+/mcp)\n$`)
	var url string
	bustest.Eventually(t, 30*time.Second, "the listening line", func() error {
		m := re.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("stdout %q", out.String())
		}
		url = m[1]
		return nil
	})
	cs := connect(t, url, nil)
	if got := onlyText(t, call(t, cs, "test_simple_text", nil)); got != simpleText {
		t.Errorf("test_simple_text over Run = %q", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second): // only a Run that never returns gets here
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "refusing to listen on non-loopback address"},
		{[]string{"--listen", "192.0.2.1:0"}, "refusing to listen on non-loopback address"},
		{[]string{"--listen", "nonsense"}, "bad --listen"},
		{[]string{"--watch-interval", "-1s"}, "--watch-interval must not be negative"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		err := Run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
