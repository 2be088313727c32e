//go:build unix

package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// A wrapper (as npx is) that forks a helper and then execs the server: when the
// worker closes the server, the forked grandchild ends too, because the child
// runs in its own process group and the whole group is signalled.
func TestStdioCloseEndsGrandchildren(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	env := []string{"MCPBUS_TEST_STDIO_SERVER=1", "MCPBUS_TEST_STDIO_STARTS=" + filepath.Join(t.TempDir(), "starts"),
		"MCPBUS_TEST_STDIO_MODE=normal", "PATH=/usr/bin:/bin"}
	script := `sleep 300 & echo $! > "$1"; exec "$0"`
	c := newStdioClient(stdioName, Process{Command: "/bin/sh", Args: []string{"-c", script, exe, pidFile}, Env: env},
		bus.LatestProtocolVersion, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Info(ctx); err != nil {
		t.Fatalf("the wrapped server did not start: %v", err)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		t.Fatalf("grandchild %q not running before Close", raw)
	}
	c.Close()
	t.Cleanup(func() {
		if t.Failed() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	bustest.Eventually(t, 30*time.Second, "the grandchild ends with Close", func() error {
		if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) || zombie(pid) { // a zombie is dead, waiting for init to reap it
			return nil
		}
		return fmt.Errorf("grandchild %d still running", pid)
	})
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] == "Z"
}
