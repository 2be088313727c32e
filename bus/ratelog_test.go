package bus

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A repeated warning is one line per interval, saying how often it came.
func TestRateLimitedWarnings(t *testing.T) {
	var out logBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Unix(1000, 0)
	r := RateLimited{now: func() time.Time { return now }}
	for range 50 {
		r.Warn(log, "slow")
	}
	r.Warn(log, "other")
	now = now.Add(WarnEvery)
	r.Warn(log, "slow")
	got := out.String()
	if strings.Count(got, "msg=slow") != 2 || !strings.Contains(got, "msg=slow times=1") || !strings.Contains(got, "msg=slow times=50") ||
		strings.Count(got, "msg=other") != 1 {
		t.Fatalf("log:\n%s", got)
	}
}
