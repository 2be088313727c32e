package upstream

// The stdio transport: the upstream MCP server is a child process of the
// worker, spoken to in newline-delimited JSON over its stdin and stdout (framed
// by the go-sdk's mcp.IOTransport), with connClient's JSON-RPC on top.
//
// Supervision. Each connClient (one per worker replica) owns at most ONE process
// at a time, shared by every call through that replica; no call ever gets a
// process of its own. The process is started lazily, by the first call (or
// Info) that needs it, like the HTTP transports' sessions. When it exits, or
// its session breaks (garbage on stdout, a refused initialize), it is ended and
// started again after a backoff that starts at 100 ms, doubles up to 10 s, and
// is reset once a process has stayed up for 30 s. Calls made meanwhile wait on
// their own context for the new process and fail with ErrUpstreamUnavailable
// ("is restarting") if it ends first. A call in flight when the process dies
// fails with "connection lost" and is not retried: it may have had effects.
//
// Environment. The child's environment is exactly Process.Env: it does NOT
// inherit the gateway's environment, which holds other servers' credentials.
// An operator who wants PATH or HOME in the child must list them. (The command
// itself is looked up in the gateway's PATH when it has no slash.)
//
// Logging. Each line the child writes to stderr is logged at info level with
// server=<name> stream=stderr. The command's arguments and environment are never
// logged: they may hold secrets.
//
// Shutdown (Close, or a session that broke while the process lives): stdin is
// closed, then the process gets 2 s to exit, then SIGTERM and 2 s more, then
// SIGKILL; it is always reaped.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Process says how to run a stdio upstream server.
type Process struct {
	Command string
	Args    []string
	// Env is the child's whole environment, as KEY=VALUE, references already
	// resolved. Nothing of the gateway's environment is added.
	Env []string
	Dir string // working directory; empty: the gateway's
}

// Supervision timings.
const (
	stdioBackoffMin  = 100 * time.Millisecond
	stdioBackoffMax  = 10 * time.Second
	stdioStableAfter = 30 * time.Second // uptime after which the backoff resets
	stdioStopGrace   = 2 * time.Second  // after closing stdin, and again after SIGTERM
	stdioMaxLogLine  = 8 << 10          // longer stderr lines are cut
)

// newStdioClient returns a client for an upstream run as a child process. The
// process starts on first use; Close ends it.
func newStdioClient(server string, spec Process, version string, log *slog.Logger) *connClient {
	if log == nil {
		log = slog.Default()
	}
	return newConnClient(server, newStdioConnector(server, spec, log), version, stdioInitTimeout, log)
}

// stdioConnector supervises the process and hands its connection to connClient.
type stdioConnector struct {
	server string
	spec   Process
	log    *slog.Logger

	// Timings, fields so tests can shorten them.
	backoffMin, backoffMax, stableAfter, grace time.Duration
	// after is time.After; a test holds the restart backoff with it.
	after func(time.Duration) <-chan time.Time

	startOnce sync.Once
	stop      chan struct{} // closed by close
	done      chan struct{} // closed when the supervisor has ended its last process

	mu      sync.Mutex
	cur     *stdioProc    // the running process, nil between processes
	changed chan struct{} // closed (and replaced) whenever cur changes
	exits   int           // processes that have ended so far
	lastErr string        // why the last start failed, "" if it did not
	// cannotRun: the last start failed because the command cannot run at
	// all (not found, not executable): calls fail at once, naming it,
	// instead of waiting for a process that will not come.
	cannotRun bool
	stopped   bool
}

// stdioProc is one run of the command.
type stdioProc struct {
	cmd     *exec.Cmd
	pid     int
	conn    mcp.Connection
	started time.Time
	exited  chan struct{} // closed once the process is reaped

	retireOnce sync.Once
	retired    chan struct{} // closed when its session is over: end the process
	readyMu    sync.Mutex
	ready      bool // a session was initialized on it
}

func newStdioConnector(server string, spec Process, log *slog.Logger) *stdioConnector {
	return &stdioConnector{
		server:      server,
		spec:        spec,
		log:         log,
		backoffMin:  stdioBackoffMin,
		backoffMax:  stdioBackoffMax,
		stableAfter: stdioStableAfter,
		grace:       stdioStopGrace,
		after:       time.After,
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		changed:     make(chan struct{}),
	}
}

func (d *stdioConnector) transport() string { return "stdio" }
func (d *stdioConnector) retryInit() bool   { return true }

// connect returns the running process's connection, starting the supervisor on
// first use and waiting (on ctx) for a process if there is none. A process
// serves one session: once that session is over the process is retired.
func (d *stdioConnector) connect(ctx context.Context) (*dialed, error) {
	d.startOnce.Do(func() { go d.supervise() })
	for {
		d.mu.Lock()
		p, changed, stopped := d.cur, d.changed, d.stopped
		d.mu.Unlock()
		if stopped {
			return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (stdio): the worker is shutting down", d.server)
		}
		if p != nil && !p.isRetired() && !p.hasExited() {
			return &dialed{conn: p.conn, release: p.retire, ready: p.setReady}, nil
		}
		if e := d.cannotRunErr(); e != nil {
			return nil, e
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if e := d.gapErr(); e != nil {
				return nil, e
			}
			return nil, bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q (stdio) did not answer in time", d.server)
		case <-d.stop:
		}
	}
}

// cannotRunErr is the error of a command that cannot run at all, or nil.
// The supervisor keeps trying (the command may be installed meanwhile).
func (d *stdioConnector) cannotRunErr() *bus.Error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.cannotRun || d.cur != nil {
		return nil
	}
	return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (stdio): its command %q cannot run: %s", d.server, d.spec.Command, d.lastErr)
}

// cannotRun reports a start error no retry fixes by itself: the command is
// not there or not executable.
func cannotRun(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, syscall.ENOEXEC)
}

// gapErr explains a wait that ended before a process was ready to serve.
func (d *stdioConnector) gapErr() *bus.Error {
	d.mu.Lock()
	p, exits, lastErr, stopped := d.cur, d.exits, d.lastErr, d.stopped
	d.mu.Unlock()
	switch {
	case stopped:
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (stdio): the worker is shutting down", d.server)
	case p != nil && p.isReady() && !p.isRetired() && !p.hasExited():
		return nil // a healthy process that is just slow: a timeout
	case lastErr != "":
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (stdio) is restarting (last start failed: %s)", d.server, lastErr)
	case exits > 0:
		return bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q (stdio) is restarting", d.server)
	default:
		// A slow first start (npx fetching a package) is not a failure: Busy
		// does not count toward the circuit breaker.
		return bus.Errorf(bus.ErrUpstreamBusy, "upstream server %q (stdio) is starting; try again shortly", d.server)
	}
}

// beginClose tells the supervisor to stop and connect to give up.
func (d *stdioConnector) beginClose() {
	d.mu.Lock()
	if !d.stopped {
		d.stopped = true
		close(d.stop)
	}
	d.mu.Unlock()
}

// close ends the supervisor and its process, and waits for both.
func (d *stdioConnector) close() {
	d.beginClose()
	d.startOnce.Do(func() { close(d.done) }) // never started: nothing to wait for
	<-d.done
}

// setCur publishes the running process (or nil) and wakes waiters.
func (d *stdioConnector) setCur(p *stdioProc, lastErr string) {
	d.setCurWith(p, lastErr, false)
}

// setCurWith is setCur saying whether a failed start can ever succeed.
func (d *stdioConnector) setCurWith(p *stdioProc, lastErr string, cannotRun bool) {
	d.mu.Lock()
	if p == nil && d.cur != nil {
		d.exits++
	}
	d.cur, d.lastErr, d.cannotRun = p, lastErr, cannotRun
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

// supervise runs the process, again and again, until close.
func (d *stdioConnector) supervise() {
	defer close(d.done)
	delay := d.backoffMin
	for {
		p, err := d.start()
		if err != nil {
			d.log.Warn("stdio upstream failed to start", "server", d.server, "command", d.spec.Command, "err", err.Error(), "retry_in", delay)
			d.setCurWith(nil, err.Error(), cannotRun(err))
		} else {
			d.log.Info("stdio upstream started", "server", d.server, "command", d.spec.Command, "pid", p.pid)
			d.setCur(p, "")
			stopping := false
			select {
			case <-p.exited:
			case <-p.retired:
			case <-d.stop:
			}
			select {
			case <-d.stop:
				stopping = true
			default:
			}
			d.setCur(nil, "")
			d.end(p)
			uptime := time.Since(p.started)
			if stopping {
				d.log.Info("stdio upstream stopped", "server", d.server, "pid", p.pid, "exit", exitStatus(p.cmd))
				return
			}
			if uptime >= d.stableAfter {
				delay = d.backoffMin
			}
			d.log.Warn("stdio upstream exited; restarting", "server", d.server, "pid", p.pid, "exit", exitStatus(p.cmd),
				"uptime", uptime.Round(time.Millisecond), "retry_in", delay)
		}
		select {
		case <-d.after(delay):
		case <-d.stop:
			return
		}
		delay = min(delay*2, d.backoffMax)
	}
}

// start runs the command with its stdin and stdout on pipes we own (so that
// reaping the process does not close stdout under the reader) and its stderr
// going to the log.
func (d *stdioConnector) start() (*stdioProc, error) {
	cmd := exec.Command(d.spec.Command, d.spec.Args...)
	// Never nil: a nil Env would hand the child the gateway's environment.
	cmd.Env = append([]string{}, d.spec.Env...)
	cmd.Dir = d.spec.Dir
	// After the process exits, stop waiting for stderr held open by a grandchild.
	cmd.WaitDelay = d.grace
	ownProcessGroup(cmd)
	stderr := &stderrLog{log: d.log, server: d.server}
	cmd.Stderr = stderr

	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout = inR, outW
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	// The child has its ends; ours would keep the pipes open after it exits.
	inR.Close()
	outW.Close()
	conn, err := (&mcp.IOTransport{Reader: outR, Writer: inW, MaxLineLength: maxUpstreamBody}).Connect(context.Background())
	if err != nil { // IOTransport cannot fail today
		inW.Close()
		outR.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	p := &stdioProc{
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		conn:    conn,
		started: time.Now(),
		exited:  make(chan struct{}),
		retired: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		stderr.flush()
		close(p.exited)
	}()
	return p, nil
}

// end stops p if it still runs: close stdin (by closing the connection), wait,
// SIGTERM, wait, SIGKILL; then waits until it is reaped.
func (d *stdioConnector) end(p *stdioProc) {
	_ = p.conn.Close()
	wait := func() bool {
		t := time.NewTimer(d.grace)
		defer t.Stop()
		select {
		case <-p.exited:
			return true
		case <-t.C:
			return false
		}
	}
	// Whatever happens to the leader, end the rest of its group too (a wrapper
	// like npx may leave its child behind); ESRCH just means nothing is left.
	defer func() { _ = signalGroup(p.cmd, syscall.SIGTERM) }()
	if wait() {
		return
	}
	if err := signalGroup(p.cmd, syscall.SIGTERM); err == nil && wait() {
		return
	}
	d.log.Warn("stdio upstream did not exit; killing it", "server", d.server, "pid", p.pid)
	_ = signalGroup(p.cmd, syscall.SIGKILL)
	<-p.exited
}

func (p *stdioProc) retire() { p.retireOnce.Do(func() { close(p.retired) }) }

func (p *stdioProc) isRetired() bool {
	select {
	case <-p.retired:
		return true
	default:
		return false
	}
}

func (p *stdioProc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *stdioProc) setReady() {
	p.readyMu.Lock()
	p.ready = true
	p.readyMu.Unlock()
}

func (p *stdioProc) isReady() bool {
	p.readyMu.Lock()
	defer p.readyMu.Unlock()
	return p.ready
}

// exitStatus describes how a reaped process ended.
func exitStatus(cmd *exec.Cmd) string {
	if cmd.ProcessState == nil {
		return "unknown"
	}
	return cmd.ProcessState.String()
}

// stderrLog logs each line the child writes to stderr. exec's copying
// goroutine is its only writer; flush runs after Wait.
type stderrLog struct {
	log    *slog.Logger
	server string
	buf    []byte
}

func (w *stderrLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := stdioMaxLogLine - len(w.buf)
			if len(p) > room {
				w.buf = append(w.buf, p[:room]...)
				w.emit()
				p = p[room:]
				continue
			}
			w.buf = append(w.buf, p...)
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *stderrLog) flush() {
	if len(w.buf) > 0 {
		w.emit()
	}
}

func (w *stderrLog) emit() {
	line := bytes.TrimRight(w.buf, "\r")
	if len(line) > stdioMaxLogLine {
		line = line[:stdioMaxLogLine]
	}
	w.log.Info(string(line), "server", w.server, "stream", "stderr")
	w.buf = w.buf[:0]
}

// String describes the spec without its arguments and environment, which may
// hold secrets.
func (s Process) String() string {
	return fmt.Sprintf("stdio command %q (%d args, %d env vars)", s.Command, len(s.Args), len(s.Env))
}
