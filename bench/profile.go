package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profilePhases takes a CPU profile of the gateway process (its --debug-listen
// pprof endpoint) while the load generator runs a phase at each concurrency,
// after the measured rounds so it does not disturb them. Files:
// dir/mcpbus-c<N>.pprof, read with `go tool pprof -top bin/mcpbus FILE`.
// After the phases it also saves the live heap (after a GC) and the
// allocations since start: dir/mcpbus-heap.pprof and dir/mcpbus-allocs.pprof
// (`go tool pprof -sample_index=inuse_space|alloc_objects ...`).
func profilePhases(ctx context.Context, dir, debugAddr string, via *target, conc []int, d time.Duration, errs *errorLog) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, c := range conc {
		path := filepath.Join(dir, fmt.Sprintf("mcpbus-c%d.pprof", c))
		done := make(chan error, 1)
		go func() { done <- fetchProfile(ctx, debugAddr, d, path) }()
		time.Sleep(100 * time.Millisecond) // the profile starts before the load
		res := runPhase(ctx, via, c, d, errs, fmt.Sprintf("profile c=%d", c), phaseHooks{})
		if err := <-done; err != nil {
			return fmt.Errorf("profile at c=%d: %w", c, err)
		}
		fmt.Fprintf(os.Stderr, "profile c=%d: %d calls, %s\n", c, res.Calls, path)
	}
	for name, q := range map[string]string{"heap": "heap?gc=1", "allocs": "allocs"} {
		if err := fetchPprof(ctx, fmt.Sprintf("http://%s/debug/pprof/%s", debugAddr, q), filepath.Join(dir, "mcpbus-"+name+".pprof")); err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
	}
	return nil
}

func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	return fetchPprof(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())), path)
}

func fetchPprof(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
