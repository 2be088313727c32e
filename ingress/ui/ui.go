// Package ui holds the admin UI's assets, embedded in the binary: plain
// HTML, CSS and JavaScript modules with no build step (the Go build needs no
// Node), and the vendored libraries under assets/vendor (their licenses
// beside them). The ingress serves them under /ui (ingress/ui_routes.go); the
// pages use only the admin API, as the CLI does.
package ui

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// FS is the assets, rooted at assets/.
func FS() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed pattern names the directory
	}
	return sub
}

// Handler serves the assets for paths under prefix ("/ui"): prefix and
// prefix/ are index.html; any other path names one file, or is 404. HTML is
// never cached (it names the scripts); the rest may be kept, revalidated.
func Handler(prefix string) http.Handler {
	files := FS()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, prefix), "/")
		if name == "" {
			name = "index.html"
		}
		name = path.Clean(name)
		if !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		data, err := fs.ReadFile(files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ctype)
		if strings.HasSuffix(name, ".html") {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(data)
	})
}
