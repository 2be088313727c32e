package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Reading a stream without a consumer and without a direct get.
//
// NATS does not check a request's reply subject against its sender's
// permissions, and JetStream answers to it: whoever may make a JetStream API
// request can make the server publish the answer on any subject, where a
// stream listening there stores it. A direct get answers with the stored
// message itself, headers and body, so a role that can both write a
// message's content (a worker's token record, a usage event) and direct-get
// it could make the server publish that content anywhere: as a key record
// into the keys bucket, as a request to auth. The roles not trusted that far
// (bus/natsauth.go) therefore read with $JS.API.STREAM.MSG.GET, whose answer
// wraps the message in a fixed JSON envelope (base64 body and headers) that
// no record or request of mcpbus can be read as; the readers of each bucket
// also check that a record names its own key (servers.go, auth's store).

// storedMsg is one stored message as a MSG.GET answer gives it.
type storedMsg struct {
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Header  []byte    `json:"hdrs"`
	Data    []byte    `json:"data"`
	Time    time.Time `json:"time"`
}

// headers decodes the stored message's headers (none: an empty set).
func (m *storedMsg) headers() nats.Header {
	if len(m.Header) == 0 {
		return nats.Header{}
	}
	h, err := nats.DecodeHeadersMsg(m.Header)
	if err != nil {
		return nats.Header{}
	}
	return h
}

// jsNoMessage is JetStream's error code for "no message found".
const jsNoMessage = 10037

// getTimeout bounds one get.
const getTimeout = 5 * time.Second

// msgGet asks stream for one stored message (req: {"last_by_subj": s} or
// {"seq": n, "next_by_subj": filter}); nil, nil when there is none.
func msgGet(ctx context.Context, nc *nats.Conn, stream string, req any) (*storedMsg, error) {
	body, _ := json.Marshal(req)
	gctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(gctx, jsMsgGet(stream), body)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	var resp struct {
		Message *storedMsg `json:"message"`
		Error   *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("stream %s: unreadable answer: %w", stream, err)
	}
	switch {
	case resp.Error != nil && (resp.Error.ErrCode == jsNoMessage || resp.Error.Code == 404):
		return nil, nil
	case resp.Error != nil:
		return nil, &streamError{stream: stream, code: resp.Error.ErrCode, description: resp.Error.Description}
	case resp.Message == nil:
		return nil, fmt.Errorf("stream %s: an answer without a message", stream)
	}
	return resp.Message, nil
}

// streamError is an error JetStream answered a get with.
type streamError struct {
	stream      string
	code        int
	description string
}

func (e *streamError) Error() string {
	return fmt.Sprintf("stream %s: %s (%d)", e.stream, e.description, e.code)
}

// jsStreamNotFound is JetStream's error code for a stream that is not there.
const jsStreamNotFound = 10059

// KVGet reads key's latest entry in bucket; ok is false when the key has
// none (never written, or purged). A deleted key's entry has Deleted set.
func KVGet(ctx context.Context, nc *nats.Conn, bucket, key string) (e KVEntry, ok bool, err error) {
	m, err := msgGet(ctx, nc, KVStream(bucket), map[string]any{"last_by_subj": KVSubject(bucket, key)})
	if err != nil || m == nil {
		return KVEntry{}, false, err
	}
	return kvEntry(bucket, m), true, nil
}

// kvEntry is a stored KV message as an entry.
func kvEntry(bucket string, m *storedMsg) KVEntry {
	op := m.headers().Get("KV-Operation")
	return KVEntry{Key: strings.TrimPrefix(m.Subject, KVPrefix(bucket)), Value: m.Data, Revision: m.Seq, Created: m.Time,
		Deleted: op == "DEL" || op == "PURGE"}
}

// streamMissing reports whether err says the stream is not there (yet).
func streamMissing(err error) bool {
	var se *streamError
	return errors.As(err, &se) && se.code == jsStreamNotFound || errors.Is(err, nats.ErrNoResponders)
}
