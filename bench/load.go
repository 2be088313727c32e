package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The MCP-aware load generator: plain net/http with keep-alive, one MCP
// session per simulated client (initialize, then notifications/initialized),
// then tools/call echo with ids that are distinct across the whole run. Every
// answer is checked: HTTP 200, a JSON-RPC response (a JSON body or an SSE
// stream: the go-sdk upstream answers with SSE, mcpbus with JSON) with the
// request's id, a result that is not an error, and the echoed text.

const protocolVersion = "2025-06-18"

// nextID hands out JSON-RPC ids, distinct across every session of the run.
var nextID atomic.Int64

// target is one endpoint the load generator drives: the upstream directly or
// mcpbus in front of it.
type target struct {
	name   string // "direct" or "mcpbus"
	url    string
	auth   http.Header // the credential header(s) the endpoint wants
	client *http.Client
	// stateless: the target speaks MCP 2026-07-28 to this client (no
	// session; _meta and the standard headers on every request).
	stateless bool
	// callVia: the tool called with echo's call as its arguments (tool
	// search's call tool, features.go); "" calls echo.
	callVia string
}

// statelessVersion is the revision a stateless target is driven with.
const statelessVersion = "2026-07-28"

// statelessMeta is the _meta every stateless-era request carries.
const statelessMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`

func newTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 512, // > the highest concurrency: every client keeps its connection
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

func newTarget(name, url string, auth http.Header) *target {
	return &target{name: name, url: url, auth: auth, client: &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}}
}

// session is one initialized MCP client session on a target.
type session struct {
	t   *target
	id  string
	buf bytes.Buffer // reused for response bodies
}

// rpcResponse is the part of a JSON-RPC response the checks read.
type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result *struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	} `json:"result"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post sends one JSON-RPC message and returns the HTTP status, the response
// headers and the body (in buf, valid until the next post on it).
func (t *target) post(ctx context.Context, sessionID string, body []byte, buf *bytes.Buffer) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Accept"] = []string{"application/json, text/event-stream"}
	for k, v := range t.auth {
		h[k] = v
	}
	if sessionID != "" {
		h["Mcp-Session-Id"] = []string{sessionID}
		h["Mcp-Protocol-Version"] = []string{protocolVersion}
	}
	if t.stateless {
		// The load generator sends one method per target kind: the
		// standard headers of a tools/call of echo.
		h["Mcp-Protocol-Version"] = []string{statelessVersion}
		h["Mcp-Method"] = []string{"tools/call"}
		h["Mcp-Name"] = []string{"echo"}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := io.Copy(buf, resp.Body); err != nil {
		return resp.StatusCode, resp.Header, nil, err
	}
	return resp.StatusCode, resp.Header, buf.Bytes(), nil
}

// findResponse returns the JSON-RPC response with id wantID in body, which is
// either one JSON message or an SSE stream of them.
func findResponse(body []byte, wantID string) (*rpcResponse, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var r rpcResponse
		if err := json.Unmarshal(trimmed, &r); err != nil {
			return nil, fmt.Errorf("response is not JSON: %.200s", body)
		}
		if string(r.ID) != wantID {
			return nil, fmt.Errorf("response id %s, want %s", r.ID, wantID)
		}
		return &r, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		var r rpcResponse
		if json.Unmarshal(bytes.TrimSpace(data), &r) == nil && string(r.ID) == wantID {
			return &r, nil
		}
	}
	return nil, fmt.Errorf("no response with id %s in: %.200s", wantID, body)
}

// initialize opens a session: initialize, check the result and the session
// id, then notifications/initialized.
func (t *target) initialize(ctx context.Context) (*session, error) {
	if t.stateless {
		return &session{t: t}, nil // nothing to open: every request stands alone
	}
	s := &session{t: t}
	id := nextID.Add(1)
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"protocolVersion":%q,"capabilities":{},"clientInfo":{"name":"mcpbus-bench","version":"1"}}}`, id, protocolVersion)
	status, hdr, resp, err := t.post(ctx, "", body, &s.buf)
	if err != nil {
		return nil, fmt.Errorf("%s initialize: %w", t.name, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s initialize: HTTP %d: %.200s", t.name, status, resp)
	}
	r, err := findResponse(resp, strconv.FormatInt(id, 10))
	if err != nil {
		return nil, fmt.Errorf("%s initialize: %w", t.name, err)
	}
	if r.Error != nil || r.Result == nil {
		return nil, fmt.Errorf("%s initialize: not a result: %.200s", t.name, resp)
	}
	s.id = hdr.Get("Mcp-Session-Id")
	if s.id == "" {
		return nil, fmt.Errorf("%s initialize: no Mcp-Session-Id", t.name)
	}
	status, _, resp, err = t.post(ctx, s.id, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), &s.buf)
	if err != nil {
		return nil, fmt.Errorf("%s notifications/initialized: %w", t.name, err)
	}
	if status != http.StatusAccepted && status != http.StatusOK && status != http.StatusNoContent {
		return nil, fmt.Errorf("%s notifications/initialized: HTTP %d: %.200s", t.name, status, resp)
	}
	return s, nil
}

// call sends one tools/call echo with a fresh id and checks the answer.
func (s *session) call(ctx context.Context) error {
	id := nextID.Add(1)
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m%d"}}}`, id, id)
	if s.t.stateless {
		body = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"m%d"},%s}}`, id, id, statelessMeta)
	}
	if s.t.callVia != "" {
		body = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":{"name":"echo","arguments":{"text":"m%d"}}}}`, id, s.t.callVia, id)
	}
	status, _, resp, err := s.t.post(ctx, s.id, body, &s.buf)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", status, resp)
	}
	r, err := findResponse(resp, strconv.FormatInt(id, 10))
	if err != nil {
		return err
	}
	if r.Error != nil {
		return fmt.Errorf("JSON-RPC error %d: %s", r.Error.Code, r.Error.Message)
	}
	if r.Result == nil || r.Result.IsError || len(r.Result.Content) == 0 || r.Result.Content[0].Text != "m"+strconv.FormatInt(id, 10) {
		return fmt.Errorf("unexpected result: %.200s", resp)
	}
	return nil
}

// close ends the session (DELETE); best effort, not counted.
func (s *session) close() {
	if s.t.stateless {
		return
	}
	req, err := http.NewRequest(http.MethodDelete, s.t.url, nil)
	if err != nil {
		return
	}
	for k, v := range s.t.auth {
		req.Header[k] = v
	}
	req.Header.Set("Mcp-Session-Id", s.id)
	req.Header.Set("Mcp-Protocol-Version", protocolVersion)
	if resp, err := s.t.client.Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// errorLog counts errors and keeps the first few messages.
type errorLog struct {
	mu      sync.Mutex
	n       int
	samples []string
}

func (e *errorLog) add(phase string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.samples) < 10 {
		e.samples = append(e.samples, phase+": "+err.Error())
	}
}

func (e *errorLog) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// phaseResult is one timed load phase on one target.
type phaseResult struct {
	Target      string  `json:"target"`
	Concurrency int     `json:"concurrency"`
	Round       int     `json:"round"`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CallsPerSec float64 `json:"calls_per_s"`
	// Only for the mcpbus target (from its process).
	CPUusPerCall    *float64 `json:"mcpbus_cpu_us_per_call,omitempty"`
	CPUUserusPC     *float64 `json:"mcpbus_cpu_user_us_per_call,omitempty"`
	CPUSysusPC      *float64 `json:"mcpbus_cpu_sys_us_per_call,omitempty"`
	AllocsPerCall   *float64 `json:"mcpbus_allocs_per_call,omitempty"`
	PeakRSSMB       *float64 `json:"mcpbus_peak_rss_mb,omitempty"`
	UpstreamCPUusPC *float64 `json:"upstream_cpu_us_per_call,omitempty"`
	LoadgenCPUusPC  *float64 `json:"loadgen_cpu_us_per_call,omitempty"` // the harness process itself
}

// phaseHooks run right before the first and right after the last timed call
// (after the sessions are open), to read the processes' counters.
type phaseHooks struct {
	before func()
	after  func(calls int)
}

// runPhase opens conc sessions on t, then drives tools/call from conc
// goroutines (one session each, one call in flight each) for dur.
func runPhase(ctx context.Context, t *target, conc int, dur time.Duration, errs *errorLog, label string, hooks phaseHooks) phaseResult {
	res := phaseResult{Target: t.name, Concurrency: conc}
	sessions := make([]*session, conc)
	var wg sync.WaitGroup
	var initErrs atomic.Int64
	for i := range conc {
		wg.Go(func() {
			s, err := t.initialize(ctx)
			if err != nil {
				initErrs.Add(1)
				errs.add(label, err)
				return
			}
			sessions[i] = s
		})
	}
	wg.Wait()
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.close()
			}
		}
	}()

	lat := make([][]time.Duration, conc)
	var failed atomic.Int64
	if hooks.before != nil {
		hooks.before()
	}
	start := time.Now()
	deadline := start.Add(dur)
	for i, s := range sessions {
		if s == nil {
			continue
		}
		wg.Go(func() {
			l := make([]time.Duration, 0, 4096)
			for {
				t0 := time.Now()
				if !t0.Before(deadline) || ctx.Err() != nil {
					break
				}
				if err := s.call(ctx); err != nil {
					failed.Add(1)
					errs.add(label, err)
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if hooks.after != nil {
		hooks.after(len(all))
	}
	res.Calls = len(all)
	res.Errors = int(failed.Load() + initErrs.Load())
	res.Seconds = elapsed.Seconds()
	res.CallsPerSec = float64(len(all)) / elapsed.Seconds()
	slices.Sort(all)
	res.P50ms = ms(percentile(all, 0.50))
	res.P99ms = ms(percentile(all, 0.99))
	return res
}

// percentile is the nearest-rank percentile of sorted samples (0 if none).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// firstCall retries initialize + one tools/call until one succeeds or ctx
// ends; the cold-start probe.
func firstCall(ctx context.Context, t *target, every time.Duration) error {
	var last error
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := t.initialize(actx)
		if err == nil {
			err = s.call(actx)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(every):
		}
	}
}

// listTools sends one tools/list and returns how long the exchange took (up
// to the last byte of the answer, before the harness parses it), how many
// tools it listed and, from an aggregated answer, how many servers _meta
// names as missing.
func (s *session) listTools(ctx context.Context) (took time.Duration, tools, missing int, err error) {
	id := nextID.Add(1)
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/list","params":{}}`, id)
	start := time.Now()
	status, _, resp, err := s.t.post(ctx, s.id, body, &s.buf)
	took = time.Since(start)
	if err != nil {
		return took, 0, 0, err
	}
	if status != http.StatusOK {
		return took, 0, 0, fmt.Errorf("HTTP %d: %.200s", status, resp)
	}
	var r struct {
		Result *struct {
			Tools []json.RawMessage `json:"tools"`
			Meta  map[string][]any  `json:"_meta"`
		} `json:"result"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(sseData(resp)), &r); err != nil {
		return took, 0, 0, fmt.Errorf("tools/list answer: %w: %.200s", err, resp)
	}
	if r.Error != nil {
		return took, 0, 0, fmt.Errorf("JSON-RPC error %d: %s", r.Error.Code, r.Error.Message)
	}
	if r.Result == nil {
		return took, 0, 0, fmt.Errorf("tools/list without a result: %.200s", resp)
	}
	return took, len(r.Result.Tools), len(r.Result.Meta["mcpbus/unavailable"]), nil
}

// sseData returns the last data line of an SSE body, or body itself when it
// is plain JSON.
func sseData(body []byte) []byte {
	t := bytes.TrimSpace(body)
	if len(t) > 0 && t[0] == '{' {
		return t
	}
	var last []byte
	for _, line := range bytes.Split(t, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			last = d
		}
	}
	return last
}
