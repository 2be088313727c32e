package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// counterLimiter enforces rpm_limit with JetStream distributed counters
// (nats-server 2.12+): each request adds 1 to the counter of its key (or
// team) and minute with one publish, and JetStream answers the new total. The
// request is admitted when that total is within the limit; a refused one
// takes its 1 back. Every increment is applied once, in order, by the
// stream's leader, so however many auth replicas count at once exactly
// `limit` requests are admitted per window: a total within the limit can only
// be seen while fewer than `limit` were admitted. There is no
// compare-and-set, so no retries and no contention to give up on.
//
// Windows are the wall-clock minute, as with the KV limiter (limiter), and a
// request a team limit refuses still counted against its key.
type counterLimiter struct {
	nc  *nats.Conn
	now func() time.Time
}

// rateCounterStream creates the counters' stream: in memory (a counter
// matters for a minute), each subject's last total kept, gone two minutes
// after its last write.
func rateCounterStream(ctx context.Context, js jetstream.JetStream, p bus.StatePolicy) error {
	_, err := bus.EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              bus.StreamRateCounters,
		Description:       "mcpbus rpm_limit counters (one per key or team per minute)",
		Subjects:          []string{bus.SubjectRateCountersAll},
		Storage:           jetstream.MemoryStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            2 * time.Minute,
		MaxMsgsPerSubject: 1,
		AllowMsgCounter:   true,
	}, p)
	if err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamRateCounters, err)
	}
	return nil
}

func (l *counterLimiter) allow(ctx context.Context, scope, id, name string, limit int) (*bus.Error, error) {
	now := l.now()
	minute := now.Unix() / 60
	subject := bus.RateCounterSubject(scope, id, minute)
	total, err := l.add(ctx, subject, "1")
	if err != nil {
		return nil, err
	}
	if total <= int64(limit) {
		return nil, nil
	}
	_, _ = l.add(ctx, subject, "-1") // a refused request is not counted
	return refusal(now, minute, scope, name, limit), nil
}

// add adds delta to the counter on subject and returns the new total.
func (l *counterLimiter) add(ctx context.Context, subject, delta string) (int64, error) {
	m := nats.NewMsg(subject)
	m.Header.Set("Nats-Incr", delta)
	reply, err := l.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		return 0, err
	}
	if reply.Header.Get("Status") == "503" {
		return 0, nats.ErrNoResponders
	}
	var ack struct {
		Val   string `json:"val"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return 0, fmt.Errorf("unreadable counter answer: %w", err)
	}
	if ack.Error != nil {
		return 0, errors.New(ack.Error.Description)
	}
	return strconv.ParseInt(ack.Val, 10, 64)
}
