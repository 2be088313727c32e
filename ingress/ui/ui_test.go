package ui

import (
	"io/fs"
	"path"
	"strings"
	"testing"
)

// The pages show names, descriptions and schemas that upstreams write (a
// rug-pulled tool's description may carry markup): no script of ours may
// parse text as HTML. The vendored libraries are not ours to hold to it.
func TestPagesNeverParseTextAsHTML(t *testing.T) {
	files := FS()
	n := 0
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" || strings.HasPrefix(p, "vendor/") {
			return err
		}
		n++
		data, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(data), "\n") {
			code := strings.TrimSpace(line)
			if strings.HasPrefix(code, "//") || strings.HasPrefix(code, "*") || strings.HasPrefix(code, "/*") {
				continue // comments may name what the code does not do
			}
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "createContextualFragment"} {
				if strings.Contains(code, bad) {
					t.Errorf("%s:%d uses %s", p, i+1, bad)
				}
			}
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("read %d scripts: %v", n, err)
	}
}
