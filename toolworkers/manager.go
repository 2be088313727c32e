package toolworkers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

// ManagerOptions configures a Manager.
type ManagerOptions struct {
	// Worker is the template every worker starts with (Log, Env, Servers,
	// JetStream, MaxInFlight, AllowAPIStdio).
	Worker Options
	// Only, if non-empty, names the servers this manager hosts; records of other
	// servers are left to other worker hosts. Empty hosts every server.
	Only []string
	// Source, if set, delivers the servers' records instead of the servers
	// bucket (a connector's, which reads no bucket): it returns once the
	// records as they are now were applied, and delivers each change after
	// that until ctx ends or stop is called.
	Source func(ctx context.Context, apply func(bus.KVEntry)) (stop func(), err error)
	// Reach, if not nil, makes this a connector's manager: it hosts the
	// records with transport connector that Reach names, each completed
	// with how to reach the server (url or command, credentials) from
	// Reach, the connector's own config (config.ConnectorSpec); the gateway's
	// record keeps deciding who sees it and which tools. Other records are
	// the cluster's workers' to serve.
	Reach map[string]bus.ServerSpec
	// DrainTimeout bounds how long a replaced, deleted or stopped worker's
	// in-flight calls may run before its upstream sessions close (default 10 s).
	DrainTimeout time.Duration
}

// Manager follows the servers bucket and keeps exactly one Worker per hosted
// server: it starts one for a new record, stops it when the record is deleted,
// and replaces it when the record's spec changes, so the upstream session is
// re-created with the new spec. A record whose spec cannot be provisioned here
// (a missing environment variable, a refused stdio command) is logged and
// tried again when the record changes; the other servers are not affected.
type Manager struct {
	nc    *nats.Conn
	opts  ManagerOptions
	log   *slog.Logger
	only  map[string]bool
	stop  context.CancelFunc
	done  chan struct{} // closed when the watch loop has returned
	drain sync.WaitGroup

	mu      sync.Mutex
	workers map[string]*hosted
	failed  map[string]failure
	drained map[string]bool // drain.go
	stopped bool
	// loaded: the bucket as it was at the start is applied; changes after
	// it are announced to sessions (announceCatalog).
	loaded atomic.Bool
}

// hosted is a running worker and the spec it was started with.
type hosted struct {
	w    *Worker
	spec []byte // canonical JSON of the spec
}

// failure is a spec that could not be started, kept so the same spec is not
// retried on every replay, only a changed one.
type failure struct {
	spec []byte
	err  error
}

// StartManager loads the servers bucket, starts a worker for each hosted
// one and follows the bucket until Stop. It reads the bucket without a
// JetStream consumer (bus.FollowKV), and only its own servers' records when
// Only names them, so a worker's bus user needs no more than that. It returns
// once the initial records are applied, so the servers in the bucket are
// callable when it returns; ctx bounds that start only.
func StartManager(ctx context.Context, nc *nats.Conn, o ManagerOptions) (*Manager, error) {
	if o.Worker.Log == nil {
		o.Worker.Log = slog.Default()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	runCtx, cancel := context.WithCancel(context.Background())
	m := &Manager{nc: nc, opts: o, log: o.Worker.Log, stop: cancel, done: make(chan struct{}),
		workers: map[string]*hosted{}, failed: map[string]failure{}}
	if len(o.Only) > 0 {
		m.only = map[string]bool{}
		for _, n := range o.Only {
			m.only[n] = true
		}
	}
	follow := o.Source
	if follow == nil {
		follow = func(ctx context.Context, apply func(bus.KVEntry)) (func(), error) {
			f, err := bus.FollowKV(ctx, nc, bus.BucketServers, o.Only, apply)
			if err != nil {
				return nil, err
			}
			return f.Stop, nil
		}
	}
	type loaded struct {
		stop func()
		err  error
	}
	started := make(chan loaded, 1)
	go func() {
		stop, err := follow(runCtx, m.apply)
		started <- loaded{stop, err}
	}()
	select {
	case l := <-started:
		if l.err != nil {
			cancel()
			m.stopAll()
			return nil, fmt.Errorf("follow %s: %w", bus.BucketServers, l.err)
		}
		m.loaded.Store(true)
		go func() {
			defer close(m.done)
			<-runCtx.Done()
			l.stop()
		}()
	case <-ctx.Done():
		cancel()
		m.stopAll()
		return nil, fmt.Errorf("follow %s: %w", bus.BucketServers, ctx.Err())
	}
	return m, nil
}

// hosts reports whether this manager is meant to run name's worker.
func (m *Manager) hosts(name string) bool { return m.only == nil || m.only[name] }

// apply brings one server in line with its record.
func (m *Manager) apply(u bus.KVEntry) {
	name := u.Key
	if !m.hosts(name) {
		return
	}
	if u.Deleted {
		m.remove(name)
		return
	}
	spec, err := bus.DecodeServerRecord(name, u.Value)
	if err != nil {
		// The router's cache keeps the last good record too.
		m.log.Error("registry: ignoring a server record; its worker, if any, keeps the previous spec", "server", bus.Shorten(name, 64), "err", err)
		return
	}
	if (spec.Transport == config.TransportConnector) != (m.opts.Reach != nil) {
		// A connector serves it from outside the cluster; or, in a
		// connector, the cluster's workers do.
		m.remove(name)
		return
	}
	if m.opts.Reach != nil {
		reach, ok := m.opts.Reach[name]
		if !ok {
			m.log.Error("the gateway says this connector serves a server its config file does not define", "server", name)
			m.remove(name)
			return
		}
		spec = config.ConnectorSpec(spec, reach)
	}
	m.applySpec(name, spec)
}

// applySpec brings one server's worker in line with spec.
func (m *Manager) applySpec(name string, spec bus.ServerSpec) {
	if m.applyDrain(name, spec) { // drain.go
		return
	}
	canon, _ := json.Marshal(spec) // a decoded ServerSpec always marshals

	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	old := m.workers[name]
	if old != nil && string(old.spec) == string(canon) {
		m.mu.Unlock()
		return // rewritten unchanged: keep the session
	}
	if f, ok := m.failed[name]; ok && old == nil && string(f.spec) == string(canon) {
		m.mu.Unlock()
		return // the same spec failed already; wait for a change
	}
	m.mu.Unlock()

	// The replacement joins the queue group before the old worker leaves it,
	// so calls find a responder throughout.
	w, err := m.start(name, spec)

	m.mu.Lock()
	if m.stopped { // Stop ran meanwhile; it did not see w
		m.mu.Unlock()
		if w != nil {
			w.Stop()
		}
		return
	}
	if err != nil {
		delete(m.workers, name)
		m.failed[name] = failure{spec: canon, err: err}
	} else {
		m.workers[name] = &hosted{w: w, spec: canon}
		delete(m.failed, name)
	}
	m.mu.Unlock()

	switch {
	case err != nil && old != nil:
		m.log.Error("server record changed but its worker could not start; the old worker is stopped, the server answers no calls until its record is fixed", "server", name, "err", err)
	case err != nil:
		m.log.Error("could not start the worker for a server; it is retried when its record changes", "server", name, "err", err)
	case old != nil:
		m.log.Info("server record changed: worker restarted with the new spec", "server", name, "transport", w.up.Transport, "source", spec.Source)
	default:
		m.log.Info("worker started", "server", name, "transport", w.up.Transport, "source", spec.Source)
	}
	if err == nil && m.loaded.Load() {
		announceCatalog(w) // a change while sessions may be open
	}
	if old != nil {
		m.retire(old.w)
	}
}

// remove stops the worker of a server deleted from the registry.
func (m *Manager) remove(name string) {
	m.mu.Lock()
	old := m.workers[name]
	m.mu.Unlock()
	if old != nil {
		// Off the bus before it leaves Hosted: once a server is not
		// hosted here, no request finds its worker here.
		m.log.Info("server removed from the registry: stopping its worker", "server", name)
		m.retire(old.w)
	}
	m.mu.Lock()
	if m.workers[name] == old {
		delete(m.workers, name)
	}
	delete(m.failed, name)
	m.mu.Unlock()
	m.undrain(name) // drain.go
}

// announceCatalog tells the sessions that use w's server (it is new to them,
// or its record changed: visibility, URL, tools allowed) that its tools,
// prompts and resources may have changed, so they list them again; the
// router's cached lists of it are dropped too.
func announceCatalog(w *Worker) {
	for _, method := range []string{"notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"} {
		w.notify(bus.Notification(method, nil))
	}
}

func (m *Manager) start(name string, spec bus.ServerSpec) (*Worker, error) {
	if spec.Name != name {
		return nil, fmt.Errorf("the record under key %q names server %q", name, spec.Name)
	}
	return Start(m.nc, spec, m.opts.Worker)
}

// retire takes w off the bus at once and, in the background, lets its
// in-flight calls finish (bounded by DrainTimeout) before stopping it.
func (m *Manager) retire(w *Worker) {
	_ = w.svc.Stop()
	// The server has the unsubscriptions before retire returns: no request
	// sent after it reaches this worker.
	_ = m.nc.FlushTimeout(time.Second)
	m.drain.Add(1)
	go func() {
		defer m.drain.Done()
		m.drainAndStop(w)
	}()
}

func (m *Manager) drainAndStop(w *Worker) {
	// The subscriptions drain asynchronously: a round trip makes sure every
	// message the server sent them has arrived, and a short pause lets them be
	// handed to the pool, so the in-flight count below includes them.
	_ = m.nc.FlushTimeout(time.Second)
	time.Sleep(20 * time.Millisecond)
	deadline := time.Now().Add(m.opts.DrainTimeout)
	for w.pool.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := w.pool.InFlight(); n > 0 {
		w.log.Warn("stopping a worker with calls still in flight after the drain timeout", "in_flight", n, "drain_timeout", m.opts.DrainTimeout)
	}
	w.Stop()
}

// Stop stops following the bucket, takes every worker off the bus, lets their
// in-flight calls finish (bounded by DrainTimeout) and stops them. It returns
// when all of them are stopped.
func (m *Manager) Stop() {
	m.stop()
	<-m.done
	m.stopAll()
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	m.stopped = true
	ws := m.workers
	m.workers = map[string]*hosted{}
	m.mu.Unlock()
	for _, h := range ws {
		m.retire(h.w)
	}
	m.drain.Wait()
}

// Hosted returns the names of the servers this manager runs a worker for, sorted.
func (m *Manager) Hosted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.workers))
	for n := range m.workers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Failed returns, by server name, why the worker of each hosted server whose
// current record could not be started is not running.
func (m *Manager) Failed() map[string]error {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]error, len(m.failed))
	for n, f := range m.failed {
		out[n] = f.err
	}
	return out
}
