package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Reading the usage stream without a JetStream consumer or a direct get: one
// get (msgget.go) per event from a sequence or a time, as any reader of the
// stream may (the usage role may create no consumer and make no direct get:
// bus/natsauth.go, msgget.go).

// UsageStart says where ReadUsage begins: at Seq, else at Time, else (New)
// after the last event stored now, else at the first event.
type UsageStart struct {
	Seq  uint64
	Time *time.Time
	New  bool
}

// UsageMsg is one stored usage event.
type UsageMsg struct {
	Seq     uint64
	Subject string
	Data    []byte
	// Header holds the event's headers (Nats-Msg-Id: its request id).
	Header nats.Header
}

// ReadUsage calls fn for every event on a subject matching filter (a
// UsageFilter, or SubjectUsageAll) from start, in order. Without follow it
// returns at the end of the stream; with it, it waits for new events until
// ctx ends (returning nil) or fn fails.
func ReadUsage(ctx context.Context, nc *nats.Conn, filter string, start UsageStart, follow bool, fn func(UsageMsg) error) error {
	return readStream(ctx, nc, StreamUsage, filter, start, follow, fn)
}

// ReadAudit reads the audit stream (StreamAudit) as ReadUsage reads the
// usage stream: filter is an AuditFilter or SubjectAuditAll.
func ReadAudit(ctx context.Context, nc *nats.Conn, filter string, start UsageStart, follow bool, fn func(UsageMsg) error) error {
	return readStream(ctx, nc, StreamAudit, filter, start, follow, fn)
}

func readStream(ctx context.Context, nc *nats.Conn, stream, filter string, start UsageStart, follow bool, fn func(UsageMsg) error) error {
	next := start.Seq
	if next == 0 && start.Time == nil && start.New {
		last, err := streamLastSeq(ctx, nc, stream)
		if err != nil {
			return err
		}
		next = last + 1
	}
	first := true
	for {
		req := map[string]any{"next_by_subj": filter}
		if first && next == 0 && start.Time != nil {
			req["start_time"] = start.Time.UTC()
		} else {
			req["seq"] = max(next, 1)
		}
		m, err := msgGet(ctx, nc, stream, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if m != nil {
			first = false
			if err := fn(UsageMsg{Seq: m.Seq, Subject: m.Subject, Data: m.Data, Header: m.headers()}); err != nil {
				return err
			}
			next = m.Seq + 1
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// streamLastSeq is the sequence of the last message stream holds now.
func streamLastSeq(ctx context.Context, nc *nats.Conn, stream string) (uint64, error) {
	gctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(gctx, jsStreamInfo(stream), nil)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	var info struct {
		State struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	if info.Error != nil {
		return 0, fmt.Errorf("stream %s: %s", stream, info.Error.Description)
	}
	return info.State.LastSeq, nil
}
