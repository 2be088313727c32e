package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dataLockFile in the data directory is locked (flock) by the gateway whose
// embedded NATS keeps its store there, and holds that process's id.
const dataLockFile = "mcpbus.lock"

// dataLock is a held lock on a data directory.
type dataLock struct{ f *os.File }

// lockDataDir takes the data directory for this process: two embedded NATS
// servers on one store would each replay and rewrite it (the second removed
// the first one's servers). The lock is the kernel's, so a crashed process
// leaves none behind.
func lockDataDir(dir string) (*dataLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, dataLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another mcpbus"
			if pid := strings.TrimSpace(string(holder)); pid != "" {
				who += " (pid " + pid + ")"
			}
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("data directory %s is in use by %s: stop it, or give this one its own --data", abs, who)
		}
		return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &dataLock{f: f}, nil
}

// release lets another process take the directory.
func (l *dataLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
