package bus

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Recall: an answer lost as a connection moves.
//
// When a NATS node dies, what its clients had written to it and it had not
// routed yet is gone: a worker's answer, or the heartbeats of a running
// call. And a client that reconnects to another node may no longer answer a
// request it took before (nats-server grants a responder its reply subject on
// the node that delivered the request). Its sender would see silence and
// fail the call as lost though the worker is alive and has the answer.
//
// So a responder keeps the answers to live requests for KeepAnswersFor, and
// says who it is (HeaderResponder) on its acknowledgements and heartbeats. A
// sender whose responder went silent for LostAfter sends a recall to that
// responder's own subject (RecallSubject), as a request whose reply subject is
// the original one, up to RecallAttempts times RecallEvery apart. The
// responder answers the recall on it (which grants it the reply subject on its
// present node): the kept answer again, or a heartbeat when the call still
// runs, or nothing when it never had the call. A responder that is dead or
// frozen says nothing either, and the call fails as lost, LostAfter +
// RecallAttempts×RecallEvery after the last heartbeat.
//
// A recall to a responder that is gone (its subject has no subscriber)
// gets nats-server's "no responders" status on the reply subject: the call is
// lost at once (NoResponders).
//
// A recall carries no data and can only make a responder send an answer to
// the subject that asked for it in the first place: a sender that has moved
// on drops it.
const (
	// HeaderResponder names the replica that took a request, on its
	// acknowledgements and heartbeats: RecallSubject's last token.
	HeaderResponder = "Mcpbus-Responder"
	// A sender makes RecallAttempts recalls, RecallEvery apart, on
	// RecallSubject (subjects.go).
	RecallAttempts = 2
	RecallEvery    = 400 * time.Millisecond
	// KeepAnswersFor is how long a responder keeps an answer for a recall,
	// within keepMaxBytes and keepMaxAnswers (the oldest go first).
	KeepAnswersFor = 10 * time.Second
	keepMaxBytes   = 16 << 20
	keepMaxAnswers = 16384
	maxReplyLen    = 256
)

func validResponder(id string) bool { return id != "" && ValidToken(id) }

// NoResponders reports whether m is nats-server's "no responders" status
// for a request nobody subscribed to. On the reply subject of a call already
// accepted, it answers a recall: the responder that took the call is gone.
func NoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header.Get("Status") == "503"
}

// SendRecall asks responder id for the answer (or a heartbeat) of the call
// it took with reply subject reply.
func SendRecall(nc *nats.Conn, id, reply string) error {
	return nc.PublishMsg(&nats.Msg{Subject: RecallSubject(id), Reply: reply})
}

// kept is one answer kept for a recall.
type kept struct {
	reply string
	msg   *nats.Msg
	at    time.Time
	size  int
}

// Reply is where req wants its answer. For a live request the answer is kept
// for a recall.
func (r *Responder) Reply(req micro.Request) Reply {
	rep := NewReply(r.nc, req)
	if _, live := AcceptBy(nats.Header(req.Headers())); live && r.id != "" && rep.subject != "" {
		rep.keep = r
	}
	return rep
}

// keepAnswer records m (sent to its Subject) for a recall, and forgets what
// is past KeepAnswersFor or beyond the bounds.
func (r *Responder) keepAnswer(m *nats.Msg) {
	k := &kept{reply: m.Subject, msg: m, at: time.Now(), size: len(m.Subject) + len(m.Data) + 64}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kept == nil {
		r.kept = map[string]*kept{}
	}
	if old := r.kept[k.reply]; old != nil {
		r.keptBytes -= old.size
		old.size = 0 // its queue entry no longer counts
	}
	r.kept[k.reply] = k
	r.keptOrder = append(r.keptOrder, k)
	r.keptBytes += k.size
	for len(r.keptOrder) > 0 {
		o := r.keptOrder[0]
		if k.at.Sub(o.at) < KeepAnswersFor && r.keptBytes <= keepMaxBytes && len(r.keptOrder) <= keepMaxAnswers {
			break
		}
		r.keptOrder[0] = nil
		r.keptOrder = r.keptOrder[1:]
		if r.kept[o.reply] == o {
			delete(r.kept, o.reply)
		}
		r.keptBytes -= o.size
	}
}

// onRecall answers a recall on its reply subject: the kept answer, or a
// heartbeat for a call still running, or nothing.
func (r *Responder) onRecall(m *nats.Msg) {
	reply := m.Reply
	if reply == "" || len(reply) > maxReplyLen {
		return
	}
	r.mu.Lock()
	k := r.kept[reply]
	b, running := r.replies[reply]
	r.mu.Unlock()
	switch {
	case k != nil && time.Since(k.at) < KeepAnswersFor:
		r.Recalled.Add(1)
		_ = r.nc.PublishMsg(&nats.Msg{Subject: reply, Header: k.msg.Header, Data: k.msg.Data})
	case running:
		r.progress(reply, ProgressRunning, b.acceptBy)
	}
}

// progress sends a liveness message naming this responder.
func (r *Responder) progress(reply, what, acceptBy string) {
	h := nats.Header{HeaderProgress: {what}, HeaderAcceptBy: {acceptBy}}
	if r.id != "" {
		h[HeaderResponder] = []string{r.id}
	}
	_ = r.nc.PublishMsg(&nats.Msg{Subject: reply, Header: h})
}

// expired says a request was taken after its accept-by, with this
// responder's clock, so its sender can tell lateness from clock skew.
func (r *Responder) expired(reply, acceptBy string) {
	h := nats.Header{HeaderProgress: {ProgressExpired}, HeaderAcceptBy: {acceptBy},
		HeaderNow: {strconv.FormatInt(time.Now().UnixMilli(), 10)}}
	if r.id != "" {
		h[HeaderResponder] = []string{r.id}
	}
	_ = r.nc.PublishMsg(&nats.Msg{Subject: reply, Header: h})
}

// responderID is a fresh id for a responder: a NATS nuid.
func responderID() string {
	return strings.TrimPrefix(nats.NewInbox(), nats.InboxPrefix)
}
