package toolworkers

import (
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// maxPrivateLinks bounds the private upstream sessions of one worker replica;
// past it the least recently used is closed (its client's next call opens a
// new one).
const maxPrivateLinks = 1024

// privateLinks holds the links opened for one downstream session each (keyed
// by key id, session id and credential set), closed when the session ends
// (bus.SubjectSessionClosed), after bus.SessionTTL without a call, when
// evicted, and when the worker stops.
type privateLinks struct {
	mu        sync.Mutex
	links     map[string]*link
	lastSweep time.Time
	closed    bool
	wg        sync.WaitGroup // background closes
}

func privateKey(keyID, sid, credKey string) string {
	return keyID + "\x00" + sid + "\x00" + credKey
}

// get returns the link for key, made by mk if there is none.
func (p *privateLinks) get(key string, mk func() *link) *link {
	now := time.Now()
	p.mu.Lock()
	if l := p.links[key]; l != nil {
		p.mu.Unlock()
		l.used.Store(now.UnixNano())
		return l
	}
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	if p.links == nil {
		p.links = map[string]*link{}
	}
	var drop []*link
	if now.Sub(p.lastSweep) > time.Minute {
		p.lastSweep = now
		for k, l := range p.links {
			if now.Sub(time.Unix(0, l.used.Load())) > bus.SessionTTL {
				drop = append(drop, l)
				delete(p.links, k)
			}
		}
	}
	if len(p.links) >= maxPrivateLinks {
		oldest, at := "", int64(0)
		for k, l := range p.links {
			if u := l.used.Load(); oldest == "" || u < at {
				oldest, at = k, u
			}
		}
		drop = append(drop, p.links[oldest])
		delete(p.links, oldest)
	}
	l := mk()
	p.links[key] = l
	p.closeLater(drop)
	p.mu.Unlock()
	return l
}

// find returns the links of one downstream session (any credential set).
func (p *privateLinks) find(keyID, sid string) []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*link
	for _, l := range p.links {
		if l.sid == sid && l.keyID == keyID {
			out = append(out, l)
		}
	}
	return out
}

// closeSession closes the links of an ended downstream session.
func (p *privateLinks) closeSession(sid string) {
	p.mu.Lock()
	var drop []*link
	for k, l := range p.links {
		if l.sid == sid {
			drop = append(drop, l)
			delete(p.links, k)
		}
	}
	p.closeLater(drop)
	p.mu.Unlock()
}

// closeLater closes links in the background (a DELETE upstream each); p.mu held.
func (p *privateLinks) closeLater(links []*link) {
	for _, l := range links {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			l.close()
		}()
	}
}

// closeAll closes every link and waits for all closes to end.
func (p *privateLinks) closeAll() {
	p.mu.Lock()
	p.closed = true
	links := p.links
	p.links = nil
	p.closeLater(mapValues(links))
	p.mu.Unlock()
	p.wg.Wait()
}

// each calls f for every link.
func (p *privateLinks) each(f func(*link)) {
	p.mu.Lock()
	links := mapValues(p.links)
	p.mu.Unlock()
	for _, l := range links {
		f(l)
	}
}

func (p *privateLinks) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

func mapValues(m map[string]*link) []*link {
	out := make([]*link, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	return out
}
