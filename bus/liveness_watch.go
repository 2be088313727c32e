package bus

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Watch is a sender's liveness state for one request across its tries
// (liveness.go): the timer to wait on, and what its firing means. The
// WorkerRequester and the ingress's POST loop both drive one, so the
// protocol lives here once.
type Watch struct {
	timer     *time.Timer
	live      bool
	tries     int
	accepted  bool
	responder string // who took the current try, for a recall
	recalls   int
}

// Verdict is what a Watch's firing means.
type Verdict int

const (
	// Resend: no replica took the try; send it again (a new Try). None
	// reached the upstream, and a queue group picks a replica anew.
	Resend Verdict = iota
	// Recall: the replica that took the try went silent; ask it again for
	// the call (Recall) and wait on the timer once more.
	Recall
	// NotTaken: no replica took the request in AcceptAttempts tries.
	NotTaken
	// Lost: the replica that took it stayed silent through its recalls.
	Lost
)

// NewWatch makes a stopped watch.
func NewWatch() *Watch {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Watch{timer: t}
}

// C is the timer to wait on.
func (w *Watch) C() <-chan time.Time { return w.timer.C }

// Stop releases the timer.
func (w *Watch) Stop() { w.timer.Stop() }

// Try starts a try. With liveness it returns the accept-by to send as
// HeaderAcceptBy and sets the timer; without, "" and the timer stays off.
func (w *Watch) Try(live bool) string {
	w.tries++
	w.accepted, w.responder, w.recalls, w.live = false, "", 0, live
	if !live {
		w.timer.Stop()
		return ""
	}
	w.timer.Reset(AcceptWithin + AcceptGrace)
	return strconv.FormatInt(time.Now().Add(AcceptWithin).UnixMilli(), 10)
}

// Heard records an acknowledgement or heartbeat of the current try, with
// the HeaderResponder it carried.
func (w *Watch) Heard(h nats.Header) {
	w.accepted, w.recalls = true, 0
	if id := h.Get(HeaderResponder); validResponder(id) {
		w.responder = id
	}
	if w.live {
		w.timer.Reset(LostAfter)
	}
}

// Accepted reports whether a replica took the current try.
func (w *Watch) Accepted() bool { return w.accepted }

// Responder is the id of the replica that took the current try ("" when
// none said).
func (w *Watch) Responder() string { return w.responder }

// MayResend reports whether the request may be tried again: fewer than
// AcceptAttempts tries so far.
func (w *Watch) MayResend() bool { return w.tries < AcceptAttempts }

// Gone reports whether a "no responders" status on the reply subject
// (NoResponders) means the call is lost: it answers the last recall of an
// accepted try. One answering an earlier recall is waited out (the
// responder's subscription may be moving with its connection; the next
// recall tells).
func (w *Watch) Gone() bool { return w.accepted && w.recalls >= RecallAttempts }

// Fired says what the timer's firing means, and sets it again for a recall.
func (w *Watch) Fired() Verdict {
	if !w.accepted {
		if w.MayResend() {
			return Resend
		}
		return NotTaken
	}
	if w.responder != "" && w.recalls < RecallAttempts {
		w.recalls++
		w.timer.Reset(RecallEvery)
		return Recall
	}
	return Lost
}
