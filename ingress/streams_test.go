package ingress

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// A POST's reply and stream subjects end in a secret: a message naming
// the right POST number with another secret (a responder counting from the
// subjects it saw) reaches no POST.
func TestStreamSubjectsNeedTheirSecret(t *testing.T) {
	h := &streamHub{id: "ing1", prefix: "mcpbus.v1.stream.ing1.", open: map[uint64]*postStream{}, log: slog.New(slog.DiscardHandler)}
	a, b := h.openStream(), h.openStream()
	if a.secret == b.secret || len(a.secret) < 16 || !strings.HasSuffix(a.replyTo, a.secret) || a.streamTo != a.replyTo+"s" {
		t.Fatalf("subjects %q %q, secrets %q %q", a.replyTo, a.streamTo, a.secret, b.secret)
	}
	forged := strings.TrimSuffix(a.replyTo, a.secret) + b.secret
	h.dispatch(&nats.Msg{Subject: forged, Data: []byte("forged")})
	h.dispatch(&nats.Msg{Subject: forged + "s.laptop", Data: []byte("forged")})
	if got, answer := a.take(nil); len(got) != 0 || answer != nil {
		t.Fatalf("a forged secret reached the POST: %d messages, answer %v", len(got), answer)
	}
	h.dispatch(&nats.Msg{Subject: a.streamTo + ".laptop", Data: []byte("progress")})
	h.dispatch(&nats.Msg{Subject: a.replyTo, Data: []byte("answer")})
	if got, answer := a.take(nil); len(got) != 1 || answer == nil || string(answer.Data) != "answer" {
		t.Fatalf("the POST's own subjects: %d messages, answer %v", len(got), answer)
	}
}

// A reply sent for one answerer (replyFor: the subject ends in its sender
// token, so the answerer may publish it by its bus permissions alone) is the
// POST's answer only from that sender: a message tagged as another server
// reaches no POST.
func TestStreamReplyForOneSender(t *testing.T) {
	h := &streamHub{id: "ing1", prefix: "mcpbus.v1.stream.ing1.", open: map[uint64]*postStream{}, log: slog.New(slog.DiscardHandler)}
	a := h.openStream()
	reply := a.replyFor("github")
	if reply != a.replyTo+".github" {
		t.Fatalf("reply subject %q, want %q", reply, a.replyTo+".github")
	}
	h.dispatch(&nats.Msg{Subject: a.replyTo + ".jira", Data: []byte("posed")})
	if _, answer := a.take(nil); answer != nil {
		t.Fatalf("another sender's message answered the POST: %s", answer.Data)
	}
	h.dispatch(&nats.Msg{Subject: reply, Data: []byte("answer")})
	if _, answer := a.take(nil); answer == nil || string(answer.Data) != "answer" {
		t.Fatalf("the answerer's reply: %v", answer)
	}
}
