package toolworkers

import (
	"sort"

	"github.com/mcpbus/mcpbus/bus"
)

// Drain (bus/server_ops.go): a record that says drain has no worker here. Its
// worker, if one runs, is taken off the bus and retired (in-flight calls
// finish, bounded by DrainTimeout); the manager keeps knowing the server as
// drained until the record changes. A record that no longer says drain is
// then started as a new one.

// applyDrain brings a drained record in line and reports whether it did:
// false for a record that does not say drain (the caller starts or keeps its
// worker).
func (m *Manager) applyDrain(name string, spec bus.ServerSpec) bool {
	if !spec.Drain {
		m.undrain(name)
		return false
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return true
	}
	old := m.workers[name]
	delete(m.workers, name)
	delete(m.failed, name)
	if m.drained == nil {
		m.drained = map[string]bool{}
	}
	already := m.drained[name]
	m.drained[name] = true
	m.mu.Unlock()
	m.opts.Worker.Metrics.setDrained(name, true)
	if old == nil {
		if !already {
			m.log.Info("server drained: no worker runs for it here until it is undrained", "server", name)
		}
		return true
	}
	m.log.Info("server drained: its worker takes no new calls and stops when its in-flight calls finish", "server", name)
	// Off the bus first, then the sessions are told its lists changed: they
	// list again and find the server left out, not this worker still there.
	_ = old.w.svc.Stop()
	announceCatalog(old.w)
	m.retire(old.w)
	return true
}

// undrain forgets that name was drained (its record changed or went away).
func (m *Manager) undrain(name string) {
	m.mu.Lock()
	was := m.drained[name]
	delete(m.drained, name)
	m.mu.Unlock()
	if was {
		m.opts.Worker.Metrics.setDrained(name, false)
		m.log.Info("server undrained", "server", name)
	}
}

// Drained returns the hosted servers whose records say drain, sorted.
func (m *Manager) Drained() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.drained))
	for n := range m.drained {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
