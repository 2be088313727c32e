package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// rateLimitsBucket opens (creating if needed) the counters bucket: memory
// storage, and entries age out two minutes after their last write, so a window's
// counter outlives its minute and then disappears on its own.
func rateLimitsBucket(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) (jetstream.KeyValue, error) {
	return bus.EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      bus.BucketRateLimits,
		Description: "mcpbus rpm_limit counters (one per key or team per minute)",
		History:     1,
		TTL:         2 * time.Minute,
		Storage:     jetstream.MemoryStorage,
	}, p)
}

// maxCASAttempts bounds the optimistic-concurrency retries of one increment.
// Each failed attempt means another replica counted a request in between, so
// running out of attempts only happens under heavy contention on one counter.
const maxCASAttempts = 10

// limiter enforces rpm_limit: requests per minute, counted in a fixed one-minute
// window (the wall-clock minute) shared by every replica of the auth service
// through the BucketRateLimits KV bucket. The counter of scope "key" or "team"
// and id X for the minute M is the entry "<scope>.<X>.<M>" (M in Unix minutes).
//
// Accuracy: the count is exact within a window across all replicas, because every
// increment is a compare-and-set on the counter's revision (kv.Create for the
// first request of a window, kv.Update with the revision read otherwise, retried
// on conflict). It is a fixed window, not a sliding one: a caller may send up to
// the limit at the end of one minute and the limit again at the start of the
// next, so up to 2x the limit within any 60 seconds spanning a boundary. Replica
// clocks decide the window; skew between replicas shifts windows by that skew.
// A request that is refused is not counted. A key limit is checked before its
// team's, so a request the team limit refuses still counted against the key.
//
// Only keys with a limit (or whose team has one) pay for the KV round trips. When
// the KV store fails, the request is allowed (the limit is abuse control, not
// authorization) and the failure is logged.
type limiter struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// allow counts one request against the limit for (scope, id). It returns nil
// when the request may proceed, or an ErrRateLimited error naming name whose
// RetryAfter is the time left in the window.
func (l *limiter) allow(ctx context.Context, scope, id, name string, limit int) (*bus.Error, error) {
	now := l.now()
	minute := now.Unix() / 60
	key := scope + "." + id + "." + strconv.FormatInt(minute, 10)
	for range maxCASAttempts {
		e, err := l.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = l.kv.Create(ctx, key, []byte("1"))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another replica counted the window's first request
			}
			if err != nil {
				return nil, err
			}
			return nil, nil
		case err != nil:
			return nil, err
		}
		n, err := strconv.Atoi(string(e.Value()))
		if err != nil {
			n = 0 // unreadable counter: start over rather than lock the key out
		}
		if n >= limit {
			return l.refuse(now, minute, scope, name, limit), nil
		}
		_, err = l.kv.Update(ctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, fmt.Errorf("rate limit counter %s: still contended after %d attempts", key, maxCASAttempts)
}

func (l *limiter) refuse(now time.Time, minute int64, scope, name string, limit int) *bus.Error {
	return refusal(now, minute, scope, name, limit)
}

// refusal is the 429 of a request over limit in the window minute.
func refusal(now time.Time, minute int64, scope, name string, limit int) *bus.Error {
	end := time.Unix((minute+1)*60, 0)
	retry := end.Sub(now)
	if retry <= 0 {
		retry = time.Second
	}
	return &bus.Error{
		Kind:       bus.ErrRateLimited,
		Message:    fmt.Sprintf("rate limit exceeded: %s '%s' is limited to %d requests per minute", scope, name, limit),
		RetryAfter: retry,
	}
}
