package bus

import (
	"strconv"
	"testing"

	"github.com/nats-io/nats.go"
)

// Kept answers are bounded in number and bytes: the oldest go first, and a
// recall for one of them finds nothing (its call then fails as lost).
func TestKeptAnswersAreBounded(t *testing.T) {
	r := &Responder{}
	for i := range keepMaxAnswers + 10 {
		r.keepAnswer(&nats.Msg{Subject: "_INBOX.a." + strconv.Itoa(i), Data: []byte("{}")})
	}
	if len(r.kept) != keepMaxAnswers || len(r.keptOrder) != keepMaxAnswers {
		t.Fatalf("%d answers kept (%d queued), want %d", len(r.kept), len(r.keptOrder), keepMaxAnswers)
	}
	if r.kept["_INBOX.a.0"] != nil || r.kept["_INBOX.a."+strconv.Itoa(keepMaxAnswers+9)] == nil {
		t.Fatal("not the oldest answers were forgotten")
	}
	big := make([]byte, 1<<20)
	for i := range 20 {
		r.keepAnswer(&nats.Msg{Subject: "_INBOX.b." + strconv.Itoa(i), Data: big})
	}
	if r.keptBytes > keepMaxBytes {
		t.Fatalf("%d bytes kept, want at most %d", r.keptBytes, keepMaxBytes)
	}
	if r.kept["_INBOX.b.19"] == nil || r.kept["_INBOX.b.0"] != nil {
		t.Fatal("the newest large answer should be kept, the oldest forgotten")
	}
	// The same reply subject answered twice counts once.
	n, bytes := len(r.kept), r.keptBytes
	r.keepAnswer(&nats.Msg{Subject: "_INBOX.b.19", Data: big})
	if len(r.kept) != n || r.keptBytes != bytes {
		t.Fatalf("answering a reply subject again: %d kept, %d bytes; was %d, %d", len(r.kept), r.keptBytes, n, bytes)
	}
}
