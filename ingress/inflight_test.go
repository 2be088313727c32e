package ingress

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
)

func TestInflightRevokeCancelsOnlyThatKey(t *testing.T) {
	var f inflight
	ctxA1, cancelA1 := context.WithCancelCause(context.Background())
	ctxA2, cancelA2 := context.WithCancelCause(context.Background())
	ctxB, cancelB := context.WithCancelCause(context.Background())
	f.add("key-a", "r1", cancelA1)
	doneA2 := f.add("key-a", "r2", cancelA2)
	f.add("key-b", "r3", cancelB)
	doneA2() // r2 finished before the revocation
	ids := f.revoke("key-a")
	sort.Strings(ids)
	if strings.Join(ids, ",") != "r1" {
		t.Fatalf("revoked %v, want only the running call r1", ids)
	}
	if !errors.Is(context.Cause(ctxA1), errRevoked) {
		t.Fatal("r1 was not cancelled with the revocation cause")
	}
	if ctxA2.Err() != nil || ctxB.Err() != nil {
		t.Fatal("a finished call or another key's call was cancelled")
	}
	if len(f.revoke("key-a")) != 0 {
		t.Fatal("a second revocation found calls again")
	}
}
