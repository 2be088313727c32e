package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one upstream call when a server sets no timeout.
const DefaultTimeout = 60 * time.Second

// MaxTimeout is the longest timeout a server may set.
const MaxTimeout = time.Hour

const timeoutRange = "must be more than 0 and at most 1h"

const timeoutSyntax = `must be a number of seconds or a Go duration such as "30s" or "500ms"`

var errTimeoutSyntax = errors.New(timeoutSyntax)

// parseTimeout reads "30", "2.5" (seconds) or a Go duration ("2s", "500ms").
// Values too large for a time.Duration come back as the largest one, which
// fails the range check.
func parseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errTimeoutSyntax
		}
		ns := f * float64(time.Second)
		if ns >= math.MaxInt64 {
			return time.Duration(math.MaxInt64), nil
		}
		if ns <= math.MinInt64 {
			return time.Duration(math.MinInt64), nil
		}
		return time.Duration(ns), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errTimeoutSyntax
	}
	return d, nil
}
