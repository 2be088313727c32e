package credential

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A redirect to another origin is refused, so the configured credential never
// follows it; a same-origin redirect is fine.
func TestRedirectsStayOnOrigin(t *testing.T) {
	var leaked string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked = r.Header.Get("X-Api-Key") }))
	defer other.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			http.Redirect(w, r, "/final", http.StatusTemporaryRedirect)
			return
		}
		if r.URL.Path == "/final" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer origin.Close()
	hc := &http.Client{CheckRedirect: RefuseCrossOrigin}
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, origin.URL+path, nil)
		req.Header.Set("X-Api-Key", "upstream-secret")
		return hc.Do(req)
	}
	if _, err := get("/away"); err == nil || !strings.Contains(err.Error(), "another origin") {
		t.Fatalf("cross-origin redirect: %v", err)
	}
	if leaked != "" {
		t.Fatal("the credential followed the redirect to another origin")
	}
	resp, err := get("/same")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("same-origin redirect: %v %v", resp, err)
	}
	resp.Body.Close()
}
