package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the harness (the demo upstream or an mcpbus
// serve). It is stopped by its PID: SIGTERM, then SIGKILL after a grace period.
type proc struct {
	name      string
	cmd       *exec.Cmd
	started   time.Time
	stderr    string // path of its stderr log
	listening chan string
	listenAt  time.Time // when the "listening on" line arrived
	done      chan struct{}
	waitErr   error
}

// running holds every child still to be stopped, for cleanup on any exit path.
var running = struct {
	sync.Mutex
	m map[*proc]bool
}{m: map[*proc]bool{}}

// startProc starts bin args with env added to the harness's environment. It
// watches stdout for the first line containing "listening on http://".
func startProc(name, bin string, args, env []string, logDir string) (*proc, error) {
	p := &proc{name: name, stderr: filepath.Join(logDir, name+".stderr.log"), listening: make(chan string, 1), done: make(chan struct{})}
	errf, err := os.Create(p.stderr)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = errf
	// If the harness dies without cleaning up, the kernel ends the children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		errf.Close()
		return nil, err
	}
	p.cmd = cmd
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		errf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	running.Lock()
	running.m[p] = true
	running.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "listening on http://"); i >= 0 && !sent {
				p.listenAt = time.Now()
				p.listening <- strings.TrimSpace(line[i+len("listening on "):])
				sent = true
			} else if (strings.HasPrefix(line, "mcpbus services ") || strings.HasPrefix(line, "mcpbus worker ready")) && !sent {
				// `serve --services` without the ingress: up, but no URL.
				p.listenAt = time.Now()
				p.listening <- ""
				sent = true
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		errf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitListening returns the URL the process printed, or an error with the
// tail of its stderr if it exits or takes longer than timeout.
func (p *proc) waitListening(timeout time.Duration) (string, error) {
	select {
	case u := <-p.listening:
		return u, nil
	case <-p.done:
		return "", fmt.Errorf("%s exited (%v) before listening:\n%s", p.name, p.waitErr, tail(p.stderr, 2000))
	case <-time.After(timeout):
		return "", fmt.Errorf("%s did not print its URL within %s:\n%s", p.name, timeout, tail(p.stderr, 2000))
	}
}

// stop ends the process: SIGTERM, up to 10 s, then SIGKILL. Idempotent.
func (p *proc) stop() {
	running.Lock()
	delete(running.m, p)
	running.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stopper stops the processes added to it in the reverse order of their
// start, as one defer per process would.
type stopper []*proc

func (s *stopper) add(p *proc) { *s = append(*s, p) }

// stop has a pointer receiver so that `defer s.stop()` stops what was added
// after the defer too.
func (s *stopper) stop() {
	for i := len(*s) - 1; i >= 0; i-- {
		(*s)[i].stop()
	}
}

// stopAll stops every child still running.
func stopAll() {
	running.Lock()
	ps := make([]*proc, 0, len(running.m))
	for p := range running.m {
		ps = append(ps, p)
	}
	running.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stop)
	}
	wg.Wait()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// clockTicks is sysconf(_SC_CLK_TCK), read once with getconf (100 on Linux).
func clockTicks() int {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// cpuTicks is utime+stime of the whole process (every thread), in clock ticks,
// from /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	u, s, err := cpuTimes(pid)
	return u + s, err
}

// cpuTimes is utime and stime of the whole process, in clock ticks.
func cpuTimes(pid int) (user, sys int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may contain spaces: fields start after ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14 utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15 stime
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return ut, st, nil
}

// rssKB is VmRSS from /proc/<pid>/status, in KiB.
func rssKB(pid int) (int64, error) { return statusKB(pid, "VmRSS") }

// statusKB is one field of /proc/<pid>/status in KiB: VmRSS, or its parts
// RssAnon (the heap, stacks) and RssFile (the binary's pages mapped from the
// page cache, shared and reclaimable).
func statusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no " + field)
}

// scrapeMetric reads one unlabeled sample from mcpbus's Prometheus endpoint
// (/metrics, open to loopback callers): the Go runtime's own counters, e.g.
// go_memstats_mallocs_total. A scrape allocates too; callers subtract that.
func scrapeMetrics(base string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, n := range names {
			if v, ok := strings.CutPrefix(line, n+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err == nil {
					out[n] = f
				}
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("/metrics has no %s", n)
		}
	}
	return out, sc.Err()
}

// freePort returns a loopback address nothing listens on (for a process whose
// URL must be known before it prints it: the cold-start probe).
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serveLoopback serves h on a free 127.0.0.1 port, printing the
// "<what> listening on http://<addr><path>" line the harness waits for
// (waitListening), until SIGTERM or SIGINT: how this binary runs as one of
// its own helper processes (the bare proxy, the minimal upstream).
func serveLoopback(what, path string, h http.Handler) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("%s listening on http://%s%s\n", what, ln.Addr(), path)
	srv := &http.Server{Handler: h}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// startSelf runs this harness binary with args as the helper process name
// and returns it and the URL its "listening on" line gave.
func startSelf(name string, args, env []string, tmp string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc(name, self, args, env, tmp)
	if err != nil {
		return nil, "", err
	}
	u, err := p.waitListening(15 * time.Second)
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return p, u, nil
}
