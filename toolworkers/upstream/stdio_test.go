//go:build unix

package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The stdio tests run the test binary itself as the upstream server: with
// MCPBUS_TEST_STDIO_SERVER=1 in its environment, TestMain serves newCCServer on
// stdin/stdout instead of running tests, so no separate build is needed.
func TestMain(m *testing.M) {
	if os.Getenv("MCPBUS_TEST_STDIO_SERVER") == "1" {
		os.Exit(stdioHelper())
	}
	os.Exit(m.Run())
}

// stdioHelper is the child process. MCPBUS_TEST_STDIO_STARTS names a file that
// gets one line per start; MCPBUS_TEST_STDIO_MODE is "" (serve), "exit" (die at
// once) or "stubborn" (ignore SIGTERM and the end of stdin).
func stdioHelper() int {
	if f := os.Getenv("MCPBUS_TEST_STDIO_STARTS"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(fh, os.Getpid())
			fh.Close()
		}
	}
	fmt.Fprintf(os.Stderr, "hello from the helper\nsecond line")
	switch os.Getenv("MCPBUS_TEST_STDIO_MODE") {
	case "exit":
		return 3
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		_ = newCCServer(nil).Run(context.Background(), &mcp.StdioTransport{})
		select {}
	}
	if err := newCCServer(nil).Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
	}
	return 0
}

const stdioName = "local"

type stdioHarness struct {
	c      *connClient
	d      *stdioConnector
	starts string
	logs   *syncBuffer
	env    []string
}

// newStdioHarness returns a client running the helper in mode, not yet started.
func newStdioHarness(t *testing.T, mode string) *stdioHarness {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &stdioHarness{starts: filepath.Join(t.TempDir(), "starts"), logs: &syncBuffer{}}
	h.env = []string{
		"MCPBUS_TEST_STDIO_SERVER=1",
		"MCPBUS_TEST_STDIO_STARTS=" + h.starts,
		"MCPBUS_TEST_STDIO_MODE=" + mode,
		"VISIBLE=yes",
	}
	// The race detector and coverage need nothing from the environment.
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.c = newStdioClient(stdioName, Process{Command: exe, Env: h.env, Dir: t.TempDir()}, bus.LatestProtocolVersion, log)
	h.d = h.c.dial.(*stdioConnector)
	t.Cleanup(h.c.Close)
	return h
}

func (h *stdioHarness) startCount() int {
	b, _ := os.ReadFile(h.starts)
	return strings.Count(string(b), "\n")
}

func (h *stdioHarness) pid(t *testing.T, ctx context.Context) int {
	t.Helper()
	msg, err := h.c.Call(ctx, "tools/call", toolCall("pid", map[string]any{}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(textResult(t, msg))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

type syncBuffer struct{ bustest.Buffer }

func (s *syncBuffer) records() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func TestStdioCallsShareOneProcess(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newStdioHarness(t, "")
	ctx := ccCtx(t, 20*time.Second)

	info, err := h.c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(info, []byte(`"name":"conn-test"`)) {
		t.Errorf("info = %s", info)
	}
	msg, err := h.c.Call(ctx, "tools/call", toolCall("echo", map[string]any{"text": "over stdio"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg.Result, []byte(`"structuredContent":{"echo":"over stdio","len":10}`)) {
		t.Errorf("echo result %s", msg.Result)
	}

	var wg sync.WaitGroup
	pids := make([]int, 20)
	logs := make([]*progressLog, 20)
	for i := range 20 {
		wg.Add(1)
		logs[i] = &progressLog{}
		go func() {
			defer wg.Done()
			tok := fmt.Sprintf("mcpbus-%d", i)
			msg, err := h.c.Call(ctx, "tools/call", toolCall("progress", map[string]any{"steps": 2, "delay_ms": 5}, tok), relayTo(logs[i].notify))
			if err != nil {
				t.Error(err)
				return
			}
			if got := textResult(t, msg); got != "done "+tok {
				t.Errorf("call %d: %q", i, got)
			}
			pids[i] = h.pid(t, ctx)
		}()
	}
	wg.Wait()
	for i, l := range logs {
		if got := l.tokens(); len(got) != 2 || got[0] != fmt.Sprintf("mcpbus-%d", i) || got[1] != got[0] {
			t.Errorf("call %d progress %v", i, got)
		}
	}
	if n := h.startCount(); n != 1 {
		t.Errorf("%d processes started, want 1", n)
	}
	for _, p := range pids[1:] {
		if p != pids[0] {
			t.Fatalf("calls ran in different processes: %v", pids)
		}
	}

	// stderr lines are logged at info with server and stream, the last even
	// without a newline once the process ends.
	h.c.Close()
	if alive(pids[0]) {
		t.Errorf("process %d alive after Close", pids[0])
	}
	var lines []string
	for _, r := range h.logs.records() {
		if r["stream"] == "stderr" {
			if r["server"] != stdioName || r["level"] != "INFO" {
				t.Errorf("stderr record %v", r)
			}
			lines = append(lines, r["msg"].(string))
		}
	}
	if !slices.Equal(lines, []string{"hello from the helper", "second line"}) {
		t.Errorf("stderr lines logged: %q", lines)
	}
	var stopped bool
	for _, r := range h.logs.records() {
		stopped = stopped || r["msg"] == "stdio upstream stopped"
		if r["msg"] == "stdio upstream exited; restarting" {
			t.Errorf("Close logged as a crash: %v", r)
		}
	}
	if !stopped {
		t.Error("Close did not log the process stopping")
	}
	// Neither the environment nor its values reach the log.
	if s := h.logs.String(); strings.Contains(s, "MCPBUS_TEST_STDIO_STARTS") || strings.Contains(s, "VISIBLE") {
		t.Errorf("log mentions the environment: %s", s)
	}

	// No goroutine outlives Close (the bound only catches one that never ends).
	bustest.Eventually(t, 30*time.Second, "no goroutine outlives Close", func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}

func TestStdioEnvironmentIsExactlyTheSpec(t *testing.T) {
	t.Setenv("MCPBUS_TEST_SECRET", "hunter2")
	h := newStdioHarness(t, "")
	msg, err := h.c.Call(ccCtx(t, 20*time.Second), "tools/call", toolCall("env", map[string]any{}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(textResult(t, msg), "\n")
	slices.Sort(got)
	want := slices.Clone(h.env)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("child environment:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(string(msg.Result), "hunter2") || len(os.Getenv("PATH")) > 0 && strings.Contains(string(msg.Result), "PATH=") {
		t.Error("the gateway's environment leaked into the child")
	}
}

func TestStdioRestartAfterKill(t *testing.T) {
	h := newStdioHarness(t, "")
	h.d.backoffMin = 50 * time.Millisecond
	ctx := ccCtx(t, 20*time.Second)
	pid := h.pid(t, ctx)

	// A call in flight when the process dies fails; it is not retried.
	errc := make(chan error, 1)
	relay, arrived := inFlight()
	go func() {
		_, err := h.c.Call(ctx, "tools/call", toolCall("sleep", map[string]any{"ms": 60000}, "mcpbus-hold"), relay)
		errc <- err
	}()
	select {
	case <-arrived: // the process is running the call
	case err := <-errc:
		t.Fatalf("the sleep call returned before the kill: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if ccKind(err) != bus.ErrUpstreamUnavailable || err.Error() != `upstream server "local" (stdio): connection lost` {
			t.Errorf("pending call: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pending call did not fail when the process died")
	}

	// The next call waits for the restarted process and succeeds.
	pid2 := h.pid(t, ctx)
	if pid2 == pid {
		t.Errorf("same pid %d after kill", pid)
	}
	if n := h.startCount(); n != 2 {
		t.Errorf("%d starts, want 2", n)
	}
	if alive(pid) {
		t.Errorf("killed process %d not reaped", pid)
	}
}

// A process that exits at once is restarted after a backoff that doubles from
// 100 ms up to 10 s, so a crash loop cannot spin. No clock: the test holds
// each backoff (stdioConnector.after) and sees exactly one start per backoff
// it lets end, with the delays in order. A caller waiting in the gap gets
// "is restarting" when its own context ends.
func TestStdioCrashLoopBacksOff(t *testing.T) {
	h := newStdioHarness(t, "exit")
	backoffs := make(chan time.Duration)
	release := make(chan time.Time)
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit) }) // runs before the harness's Close
	h.d.after = func(d time.Duration) <-chan time.Time {
		select {
		case backoffs <- d:
		case <-quit:
		}
		return release
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := h.c.Call(ctx, "tools/list", nil, nil)
		errc <- err
	}()
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		var d time.Duration
		select {
		case d = <-backoffs:
		case err := <-errc:
			t.Fatalf("the call returned during the crash loop: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatalf("no backoff %d: the supervisor stopped restarting, or restarts without a backoff", i+1)
		}
		if d != w {
			t.Errorf("backoff %d is %s, want %s", i+1, d, w)
		}
		if n := h.startCount(); n != i+1 {
			t.Fatalf("%d starts before backoff %d ended, want %d: a start without a backoff", n, i+1, i+1)
		}
		if i < len(want)-1 {
			release <- time.Time{}
		}
	}
	// The supervisor now waits in a backoff: no process can come up, so the
	// outcome of a caller's context ending does not depend on when it ends.
	cancel()
	if err := <-errc; ccKind(err) != bus.ErrUpstreamUnavailable || !strings.Contains(err.Error(), `upstream server "local" (stdio) is restarting`) {
		t.Errorf("err = %v (%s)", err, ccKind(err).Code)
	}
	// Info during the gap fails the same way.
	if _, err := h.c.Info(ccCtx(t, 100*time.Millisecond)); ccKind(err) != bus.ErrUpstreamUnavailable {
		t.Errorf("Info: %v", err)
	}
	var exits int
	for _, r := range h.logs.records() {
		if r["msg"] == "stdio upstream exited; restarting" {
			exits++
			if r["server"] != stdioName || !strings.Contains(fmt.Sprint(r["exit"]), "3") {
				t.Errorf("exit record %v", r)
			}
		}
	}
	if exits != len(want) {
		t.Errorf("%d exits logged, want %d", exits, len(want))
	}
	if n := h.startCount(); n != len(want) {
		t.Errorf("%d starts, want %d", n, len(want))
	}
}

// A command that cannot start: a caller waiting for it learns why (without
// the environment). The test waits until the supervisor has recorded the
// failure, so the caller's short deadline decides nothing.
func TestStdioStartFailure(t *testing.T) {
	c := newStdioClient(stdioName, Process{Command: "/nonexistent/mcp-server", Env: []string{"TOKEN=abc123"}}, bus.LatestProtocolVersion, slog.New(slog.DiscardHandler))
	defer c.Close()
	d := c.dial.(*stdioConnector)
	if _, err := c.Call(ccCtx(t, 100*time.Millisecond), "tools/list", nil, nil); err == nil {
		t.Fatal("a call to a command that cannot start succeeded")
	}
	bustest.Eventually(t, 30*time.Second, "the failed start is recorded", func() error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.lastErr == "" {
			return errors.New("no error recorded")
		}
		return nil
	})
	_, err := c.Call(ccCtx(t, 100*time.Millisecond), "tools/list", nil, nil)
	if ccKind(err) != bus.ErrUpstreamUnavailable || !strings.Contains(err.Error(), `its command "/nonexistent/mcp-server" cannot run`) || strings.Contains(err.Error(), "abc123") {
		t.Errorf("err = %v", err)
	}
}

func TestStdioCloseKillsAStubbornProcess(t *testing.T) {
	h := newStdioHarness(t, "stubborn")
	h.d.grace = 200 * time.Millisecond
	pid := h.pid(t, ccCtx(t, 20*time.Second))
	// Close returns only once the process is gone: it ignores the end of its
	// stdin and SIGTERM, so only the SIGKILL after both graces ends it.
	h.c.Close()
	if alive(pid) {
		t.Errorf("process %d alive after Close", pid)
	}
	var killed bool
	for _, r := range h.logs.records() {
		killed = killed || r["msg"] == "stdio upstream did not exit; killing it"
	}
	if !killed {
		t.Error("no kill logged")
	}
	// Calls after Close fail at once.
	_, err := h.c.Call(ccCtx(t, time.Second), "tools/list", nil, nil)
	if ccKind(err) != bus.ErrUpstreamUnavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("after Close: %v", err)
	}
}

func TestStdioCloseBeforeUseStartsNothing(t *testing.T) {
	h := newStdioHarness(t, "")
	h.c.Close()
	if _, err := h.c.Info(ccCtx(t, time.Second)); err == nil {
		t.Error("Info after Close succeeded")
	}
	if n := h.startCount(); n != 0 {
		t.Errorf("%d starts", n)
	}
}

func TestStdioBrokenSessionRestartsTheProcess(t *testing.T) {
	// A session that breaks while the process lives (here: we close the
	// connection under it) retires the process; the next call gets a new one.
	h := newStdioHarness(t, "")
	h.d.backoffMin = 10 * time.Millisecond
	ctx := ccCtx(t, 20*time.Second)
	pid := h.pid(t, ctx)
	s := h.c.cur.Load()
	s.fail(nil, errors.New("test"))
	pid2 := h.pid(t, ctx)
	if pid2 == pid || alive(pid) {
		t.Errorf("old %d (alive %v), new %d", pid, alive(pid), pid2)
	}
}

// A command that cannot run (not there, not executable) fails a call at
// once with an error naming it, instead of holding the call until its
// deadline while the supervisor retries; once it can run, it serves.
func TestStdioCommandThatCannotRun(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{filepath.Join(dir, "no-such-command"), "mcpbus-no-such-command-on-path", notExec} {
		c := newStdioClient(stdioName, Process{Command: cmd, Dir: dir}, bus.LatestProtocolVersion, slog.New(slog.DiscardHandler))
		// The deadline only catches a call that waits for a process that will
		// never come; the answer is expected long before.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := c.Call(ctx, "tools/list", json.RawMessage(`{}`), nil)
		cancel()
		c.Close()
		e := bus.AsError(err)
		if err == nil || e.Kind != bus.ErrUpstreamUnavailable || !strings.Contains(e.Message, "cannot run") || !strings.Contains(e.Message, cmd) {
			t.Errorf("%s: %v, want UPSTREAM_UNAVAILABLE naming the command", cmd, err)
		}
	}
}
