package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
)

// The floor: a bare Go HTTP proxy (net/http server and client) in front of the
// same upstream, holding its credential, with no MCP, bus, auth or logging.
// The harness runs itself in this mode as a separate process (-reverse-proxy)
// and measures it like the gateway, so the table shows what one HTTP hop
// costs on this machine before mcpbus does anything.

// proxyAuthEnv carries the upstream credential to the proxy process.
const proxyAuthEnv = "MCPBUS_BENCH_PROXY_AUTHORIZATION"

// serveReverseProxy listens on 127.0.0.1, prints the "listening on" line the
// harness waits for, and proxies to upstream until SIGTERM or SIGINT. Each
// answer is read whole and then written, as the gateway does (an MCP answer
// stream ends right after its response); httputil.ReverseProxy, streaming,
// lost about 1 call in 400 here with "use of closed network connection" on
// its upstream read, so it is not used.
func serveReverseProxy(upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	auth := os.Getenv(proxyAuthEnv)
	client := &http.Client{Transport: newTransport()}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, u.Scheme+"://"+u.Host+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for _, h := range []string{"Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version"} {
			if v := r.Header.Values(h); len(v) > 0 {
				out.Header[h] = v
			}
		}
		out.Header.Set("Authorization", auth)
		resp, err := client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		answer, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for _, h := range []string{"Content-Type", "Mcp-Session-Id"} {
			if v := resp.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	})
	return serveLoopback("reverse proxy", "", handler)
}

// startReverseProxy runs this harness binary as the proxy in front of
// upstream (a URL whose path is kept) and returns it and the URL to call.
func startReverseProxy(upstream, authorization string, env []string, tmp string) (*proc, string, error) {
	p, base, err := startSelf("reverse-proxy", []string{"-reverse-proxy", upstream}, append(env, proxyAuthEnv+"="+authorization), tmp)
	if err != nil {
		return nil, "", err
	}
	u, _ := url.Parse(upstream)
	return p, base + u.Path, nil
}
