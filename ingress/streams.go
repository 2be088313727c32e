package ingress

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// streamHub carries the streams of every POST this process is answering over
// one wildcard subscription (bus.StreamPrefix): nothing is subscribed per
// request. A POST takes a token and with it two subjects under the prefix:
// its stream subject, where workers publish the messages related to it
// (Envelope.Stream), and its reply subject, where the router answers. Both
// come through the same subscription, so a related message published before
// the answer is always seen before it.
type streamHub struct {
	id     string // this process's subject token
	prefix string // bus.StreamSubject(id, "")
	next   atomic.Uint64
	mu     sync.Mutex
	open   map[uint64]*postStream
	pool   sync.Pool
	sub    *nats.Subscription
	log    *slog.Logger
}

// postStream is one POST's place in the hub.
type postStream struct {
	sink
	n        uint64
	secret   string // unguessable part of its subjects (bus.ReplySecret)
	replyTo  string // where the router answers
	streamTo string // where workers send related messages
	// answerer is the sender token the answer must come with, when it is
	// sent to replyTo+"."+answerer (replyFor).
	answerer atomic.Pointer[string]
}

// replyFor is the reply subject for a request that sender answers:
// replyTo+"."+sender, a ClientSubject every responder may publish to by its
// bus permissions (a worker as its server's name, the router as
// bus.GatewayToken, ...). So nats-server does not track the reply subject as
// a response permission: a responder that may send many messages to one
// reply (liveness acknowledgements, heartbeats) holds such an entry for
// bus.ReplyWindow, about an hour, per request. An answer is taken from the
// last sender asked only.
func (ps *postStream) replyFor(sender string) string {
	ps.answerer.Store(&sender)
	return bus.ClientSubject(ps.replyTo, sender)
}

// answersFrom reports whether an answer sent as sender is this POST's.
func (ps *postStream) answersFrom(sender string) bool {
	want := ps.answerer.Load()
	return want != nil && *want == sender
}

func newStreamHub(nc *nats.Conn, log *slog.Logger) (*streamHub, error) {
	id := nuid.Next()
	h := &streamHub{id: id, prefix: bus.StreamSubject(id, ""), open: map[uint64]*postStream{}, log: log}
	sub, err := nc.Subscribe(bus.StreamPrefix(id), h.dispatch)
	if err != nil {
		return nil, err
	}
	h.sub = sub
	return h, nil
}

// openStream registers a new POST stream. Release it with closeStream.
func (h *streamHub) openStream() *postStream {
	ps, _ := h.pool.Get().(*postStream)
	if ps == nil {
		ps = &postStream{sink: sink{wake: make(chan struct{}, 1)}}
	}
	ps.n = h.next.Add(1)
	// One string holds both subjects: "<prefix><hex n>_<secret>s" is the
	// stream subject, the same without the "s" the reply subject. The
	// secret keeps a responder that saw one POST's subjects (a connector,
	// outside the cluster) from writing into another's by counting.
	ps.secret = bus.ReplySecret()
	var sb strings.Builder
	var num [16]byte
	hex := strconv.AppendUint(num[:0], ps.n, 16)
	sb.Grow(len(h.prefix) + len(hex) + 1 + len(ps.secret) + 1)
	sb.WriteString(h.prefix)
	sb.Write(hex)
	sb.WriteByte('_')
	sb.WriteString(ps.secret)
	sb.WriteByte('s')
	ps.streamTo = sb.String()
	ps.replyTo = ps.streamTo[:len(ps.streamTo)-1]
	h.mu.Lock()
	h.open[ps.n] = ps
	h.mu.Unlock()
	return ps
}

// closeStream unregisters ps; messages for it are dropped from then on.
func (h *streamHub) closeStream(ps *postStream) {
	h.mu.Lock()
	delete(h.open, ps.n)
	h.mu.Unlock()
	ps.reset()
	ps.replyTo, ps.streamTo, ps.secret = "", "", ""
	ps.answerer.Store(nil)
	h.pool.Put(ps)
}

// dispatch hands a message to the POST it names. It runs on the
// subscription's goroutine and never blocks.
func (h *streamHub) dispatch(m *nats.Msg) {
	tok, ok := strings.CutPrefix(m.Subject, h.prefix)
	if !ok || tok == "" {
		return
	}
	// "<n>_<secret>" is the reply subject, "<n>_<secret>.<sender>" the reply
	// subject for one sender (replyFor); a related message comes on
	// "<n>_<secret>s.<sender>" (bus.ClientSubject of the stream subject).
	tok, sender, withSender := strings.Cut(tok, ".")
	tok, related := strings.CutSuffix(tok, "s")
	if related && sender == "" || withSender && sender == "" {
		return
	}
	num, secret, _ := strings.Cut(tok, "_")
	n, err := strconv.ParseUint(num, 16, 64)
	if err != nil {
		return
	}
	delivered := false
	h.mu.Lock()
	if ps := h.open[n]; ps != nil && ps.secret == secret {
		switch {
		case related:
			delivered = ps.push(m)
		case !withSender || ps.answersFrom(sender):
			ps.answer(m)
			delivered = true
		}
	}
	h.mu.Unlock()
	if !delivered && related {
		// The POST was answered (or its client left) before this arrived. A
		// server-to-client request is left unacknowledged, so its worker
		// answers the upstream that the client cannot be reached.
		h.log.Debug("dropped a message for a POST stream that has ended", "subject", m.Subject, "request", m.Reply != "")
	}
}

func (h *streamHub) close() {
	if h != nil && h.sub != nil {
		_ = h.sub.Unsubscribe()
	}
}
