package toolworkers

import (
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Listen leases (bus/era_lease.go): a subscriptions/listen's resource
// subscriptions stand on the shared links like a session's, under a lease
// id. The ingress renews the lease while the stream lives and says when it
// ends (SubjectSessionClosed, as for a session); a lease not renewed within
// its TTL, because the ingress holding it died, is dropped here as if it
// had ended, unsubscribing upstream where it was the last subscriber.

// listenLeases are the leases this replica holds subscriptions for, each
// with the timer that ends it.
type listenLeases struct {
	mu     sync.Mutex
	m      map[string]*time.Timer
	ttl    time.Duration // bus.ListenLeaseTTL; shorter in tests
	closed bool
}

// touch starts or renews lease sid; expire runs if it is not renewed in
// time.
func (ls *listenLeases) touch(sid string, expire func()) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return
	}
	if t, ok := ls.m[sid]; ok {
		t.Reset(ls.ttl)
		return
	}
	if ls.m == nil {
		ls.m = map[string]*time.Timer{}
	}
	if ls.ttl <= 0 {
		ls.ttl = bus.ListenLeaseTTL
	}
	ls.m[sid] = time.AfterFunc(ls.ttl, func() {
		ls.mu.Lock()
		_, live := ls.m[sid]
		delete(ls.m, sid)
		ls.mu.Unlock()
		if live {
			expire()
		}
	})
}

// release forgets lease sid, which ended.
func (ls *listenLeases) release(sid string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if t, ok := ls.m[sid]; ok {
		t.Stop()
		delete(ls.m, sid)
	}
}

// held reports how many leases the replica holds.
func (ls *listenLeases) held() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.m)
}

// stop ends every timer: the worker is stopping, its links close anyway.
func (ls *listenLeases) stop() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.closed = true
	for sid, t := range ls.m {
		t.Stop()
		delete(ls.m, sid)
	}
}

// dropSubscriber removes the resource subscriptions of an ended session or
// lease from the shared and credential links, unsubscribing upstream where
// it was the last subscriber.
func (w *Worker) dropSubscriber(sid string) {
	w.leases.release(sid)
	w.shared.dropSession(sid)
	w.creds.each(func(l *link) { l.dropSession(sid) })
}

// leased records, after a successful subscribe on a shared or credential
// link, that lease sid wants the link's subscriptions: renewed, or dropped
// when no longer renewed.
func (w *Worker) leased(sid string) {
	if bus.IsListenLease(sid) {
		w.leases.touch(sid, func() {
			w.log.Info("a subscriptions/listen lease was not renewed; dropping its resource subscriptions", "lease", sid)
			w.dropSubscriber(sid)
		})
	}
}
