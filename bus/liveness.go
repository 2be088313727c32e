package bus

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Worker liveness: a request to a server's workers that asks for it (with
// HeaderAcceptBy) is acknowledged by the worker replica that takes it, and
// then kept alive by heartbeats until its answer, all on the request's reply
// subject. So whoever sent it knows within about a second that no live
// worker took it, and within LostAfter that the worker running it died or
// froze, instead of waiting for the server's whole timeout:
//
//   - not accepted by AcceptBy (+AcceptGrace): no replica took it, so none
//     reached the upstream; it is sent again (a queue group picks a replica
//     anew), at most AcceptAttempts times in all.
//   - accepted, then nothing for LostAfter: the worker is recalled
//     (liveness_recall.go: its answer may have been lost as a connection
//     moved); still nothing, it is gone: the call fails with ErrWorkerLost
//     and is never sent again (it may have reached the upstream).
//
// A worker never starts a request after its AcceptBy: one that waited out
// the window in a frozen process's buffers is dropped without touching the
// upstream (and so never counts toward its breaker), and its sender has
// moved on, so no request runs twice.
const (
	// HeaderAcceptBy asks for liveness: the Unix milliseconds by which a
	// worker must take the request, or leave it.
	HeaderAcceptBy = "Mcpbus-Accept-By"
	// HeaderProgress marks a message on the reply subject that is not the
	// answer: ProgressAccepted, ProgressRunning or ProgressExpired.
	HeaderProgress   = "Mcpbus-Progress"
	ProgressAccepted = "accepted"
	ProgressRunning  = "running"
	// ProgressExpired: the worker got the request after its AcceptBy and
	// dropped it, saying its clock (HeaderNow). Seen while the sender still
	// waits, either the worker was late (busy, or just resumed from a
	// freeze: the sender tries again) or its clock is ahead of the
	// sender's by more than AcceptGrace (ClockAhead: liveness goes off).
	ProgressExpired = "expired"
	// HeaderNow is the responder's clock (Unix ms) on ProgressExpired.
	HeaderNow = "Mcpbus-Now"

	AcceptWithin   = time.Second
	AcceptGrace    = 500 * time.Millisecond
	AcceptAttempts = 5
	HeartbeatEvery = 500 * time.Millisecond
	LostAfter      = 1750 * time.Millisecond
)

// Liveness errors, before the sender turns them into an *Error naming the
// server (LivenessError).
var (
	errNotAccepted = ErrNotTaken
	errWorkerLost  = errors.New("the worker stopped answering")
)

// ErrNotTaken: no responder took a request in AcceptAttempts tries, so none
// handled it.
var ErrNotTaken = errors.New("no responder took the request")

// ClockAhead reports whether an expired message (ProgressExpired) says the
// responder's clock is ahead of now by more than AcceptGrace: the request
// could not have been late otherwise. A message without HeaderNow counts as
// ahead (a responder from before the header).
func ClockAhead(h nats.Header, now time.Time) bool {
	ms, err := strconv.ParseInt(h.Get(HeaderNow), 10, 64)
	if err != nil {
		return true
	}
	return time.UnixMilli(ms).Sub(now) > AcceptGrace
}

// AcceptBy reads HeaderAcceptBy: the deadline, and whether liveness was asked.
func AcceptBy(h nats.Header) (time.Time, bool) {
	v := h.Get(HeaderAcceptBy)
	if v == "" {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// Progress sends a liveness message (ProgressAccepted, ...) to reply, about
// the request sent with acceptBy (its HeaderAcceptBy, echoed so a sender that
// sent again can tell an earlier try's messages from the current one's).
func Progress(nc *nats.Conn, reply, what, acceptBy string) {
	if reply == "" {
		return
	}
	_ = nc.PublishMsg(&nats.Msg{Subject: reply, Header: nats.Header{HeaderProgress: {what}, HeaderAcceptBy: {acceptBy}}})
}

// WorkerRequester sends requests to workers with liveness. One per
// connection: its replies arrive on one wildcard subscription and are
// dispatched to the waiting request by their subject's tokens. A request
// whose answerer is known (AnswererOf) gets a reply subject under the user's
// ReplyPrefix that the answerer may publish to by its grant (ReplyFrom);
// others, or a connection without a user's inbox prefix, get one under the
// connection's inbox.
type WorkerRequester struct {
	nc      *nats.Conn
	prefix  string // the connection's inbox, for replies from anyone
	rprefix string // under ReplyPrefix(user), for tagged replies; "" if the user is unknown
	subs    []*nats.Subscription
	next    atomic.Uint64
	mu      sync.Mutex
	calls   map[string]pendingCall
	// skewed is set once a worker's clock, ahead of this one's, put a
	// request past its AcceptBy on arrival: from then on requests go
	// without liveness, said once in log.
	skewed atomic.Bool
	log    *slog.Logger
}

// pendingCall is one try waiting for its replies, from sender ("": from the
// inbox).
type pendingCall struct {
	ch     chan *nats.Msg
	sender string
}

// NewWorkerRequester subscribes nc's reply subjects for worker requests;
// log (nil: none) hears once if liveness goes off for clock skew.
func NewWorkerRequester(nc *nats.Conn, log *slog.Logger) (*WorkerRequester, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &WorkerRequester{nc: nc, prefix: nc.NewRespInbox(), calls: map[string]pendingCall{}, log: log}
	if user, ok := strings.CutPrefix(nc.Opts.InboxPrefix, InboxPrefix("")); ok && user != "" {
		r.rprefix = ReplyPrefix(user) + "." + ReplySecret()
	}
	sub, err := nc.Subscribe(r.prefix+".*", func(m *nats.Msg) { r.dispatch(m, m.Subject[len(r.prefix)+1:], "") })
	if err != nil {
		return nil, err
	}
	r.subs = append(r.subs, sub)
	if r.rprefix != "" {
		sub, err := nc.Subscribe(r.rprefix+".*.*", func(m *nats.Msg) {
			token, sender, _ := strings.Cut(m.Subject[len(r.rprefix)+1:], ".")
			r.dispatch(m, token, sender)
		})
		if err != nil {
			r.Close()
			return nil, err
		}
		r.subs = append(r.subs, sub)
	}
	return r, nil
}

// Close ends the subscription; requests waiting end with their contexts.
func (r *WorkerRequester) Close() {
	if r == nil {
		return
	}
	for _, sub := range r.subs {
		_ = sub.Unsubscribe()
	}
}

// Skewed reports whether a responder's clock was ahead of this process's
// by more than AcceptGrace, so requests now go without liveness.
func (r *WorkerRequester) Skewed() bool { return r.skewed.Load() }

// dispatch hands m, a reply for token from sender, to its waiting try: only
// the sender that try asked for may answer it.
func (r *WorkerRequester) dispatch(m *nats.Msg, token, sender string) {
	r.mu.Lock()
	c, ok := r.calls[token]
	r.mu.Unlock()
	if !ok || c.sender != sender {
		return // an abandoned attempt's late message, or another sender's
	}
	select {
	case c.ch <- m:
	default: // a slow waiter: heartbeats may be dropped, never the answer (the buffer outlasts them)
	}
}

// register makes a try's token and its reply subject, for replies from the
// answerer of subject.
func (r *WorkerRequester) register(subject string) (token, reply string, ch chan *nats.Msg) {
	// Unguessable: a responder sees its own calls' reply subjects, and a
	// connector outside the cluster may publish to this inbox.
	token = strconv.FormatUint(r.next.Add(1), 36) + "_" + ReplySecret()
	sender := ""
	if r.rprefix != "" {
		sender = AnswererOf(subject)
	}
	reply = r.prefix + "." + token
	if sender != "" {
		reply = ReplySubject(r.rprefix, token, sender)
	}
	ch = make(chan *nats.Msg, 16)
	r.mu.Lock()
	r.calls[token] = pendingCall{ch: ch, sender: sender}
	r.mu.Unlock()
	return token, reply, ch
}

func (r *WorkerRequester) unregister(token string) {
	r.mu.Lock()
	delete(r.calls, token)
	r.mu.Unlock()
}

// Request sends m (its Subject, Data and Header; the header is changed) to
// a server's workers and waits for the answer until ctx ends. Errors:
// nats.ErrNoResponders (no worker subscribed), ctx's error, or one for
// which IsLivenessError holds (LivenessError turns it into the caller's).
func (r *WorkerRequester) Request(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	w := NewWatch()
	defer w.Stop()
	for {
		reply, err := r.attempt(ctx, m, w)
		switch {
		case errors.Is(err, errSkew):
			if !r.skewed.Swap(true) {
				r.log.Warn("a responder's clock is more than "+AcceptGrace.String()+" ahead of this process's; requests to workers go without liveness from now on (fix NTP)",
					"subject", m.Subject)
			}
		case errors.Is(err, errResend) && ctx.Err() == nil:
		default:
			return reply, err
		}
	}
}

var (
	errSkew   = errors.New("worker clock skew")
	errResend = errors.New("nobody took the try")
)

// attempt is one try of a request: a new reply subject, so a late message
// of an earlier try is told apart.
func (r *WorkerRequester) attempt(ctx context.Context, m *nats.Msg, w *Watch) (*nats.Msg, error) {
	token, reply, ch := r.register(m.Subject)
	defer r.unregister(token)
	out := &nats.Msg{Subject: m.Subject, Reply: reply, Data: m.Data, Header: m.Header}
	if acceptBy := w.Try(!r.skewed.Load()); acceptBy != "" {
		out.Header[HeaderAcceptBy] = []string{acceptBy}
	} else {
		delete(out.Header, HeaderAcceptBy)
	}
	if err := r.nc.PublishMsg(out); err != nil {
		return nil, err
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.C():
			switch w.Fired() {
			case Resend:
				return nil, errResend
			case Recall:
				_ = SendRecall(r.nc, w.Responder(), out.Reply)
			case NotTaken:
				return nil, errNotAccepted
			default:
				return nil, errWorkerLost
			}
		case msg := <-ch:
			if NoResponders(msg) {
				switch {
				case w.Gone(): // to the last recall: the worker is gone
					return nil, errWorkerLost
				case w.Accepted(): // to an earlier recall
					continue
				}
				return nil, nats.ErrNoResponders
			}
			switch msg.Header.Get(HeaderProgress) {
			case "":
				return msg, nil
			case ProgressExpired:
				switch {
				case w.Accepted():
				case ClockAhead(msg.Header, time.Now()):
					return nil, errSkew
				case w.MayResend(): // taken late: another try
					return nil, errResend
				default:
					return nil, errNotAccepted
				}
			default:
				w.Heard(msg.Header)
			}
		}
	}
}

// IsLivenessError reports whether err is a worker that took no request or
// stopped answering.
func IsLivenessError(err error) bool {
	return errors.Is(err, errNotAccepted) || errors.Is(err, errWorkerLost)
}

// LivenessError is the caller's error for a liveness failure of a request
// to s's workers.
func LivenessError(s ServerSpec, err error) *Error {
	if errors.Is(err, errNotAccepted) {
		return NotTakenError(s)
	}
	return WorkerLostError(s)
}

// NotTakenError: no live worker of s took a request in AcceptAttempts tries.
func NotTakenError(s ServerSpec) *Error {
	return Errorf(ErrWorkerLost, "no tool worker for server %q took the call (%d tries, %s each); none reached the upstream", s.Name, AcceptAttempts, AcceptWithin+AcceptGrace)
}

// WorkerLostError: the worker running a request to s stopped answering.
func WorkerLostError(s ServerSpec) *Error {
	return Errorf(ErrWorkerLost, "the worker serving %q stopped while this call ran", s.Name)
}
