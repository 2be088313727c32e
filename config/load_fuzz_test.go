package config

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"golang.org/x/tools/txtar"
)

// fuzzSecret marks every environment value in the seeds: no error or
// warning may ever show it (errors.go: a message never holds a value read
// from the environment).
const fuzzSecret = "SECRET"

var envRefRE = regexp.MustCompile(`os\.environ/([A-Za-z0-9_]+)`)

// FuzzParse: Parse never panics on any bytes and environment; a file it
// refuses gets a *FileError of the file's name listing problems that each
// have a message and, but for the file-level ones, a path, and no message
// shows an environment value or breaks the one-problem-per-line form; a file it accepts names its servers by valid
// subject tokens, provisions every server, and parses again to the same
// result.
//
// The seeds are every config.yaml in testdata/*.txtar (with its env) and the
// example deploy/examples/config.yaml, plus the attack files in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.txtar")
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		parts := map[string][]byte{}
		for _, af := range ar.Files {
			parts[af.Name] = af.Data
		}
		if data, ok := parts["config.yaml"]; ok {
			f.Add(data, string(parts["env"]))
		}
	}
	if data, err := os.ReadFile("../deploy/examples/config.yaml"); err == nil {
		var env strings.Builder
		for _, m := range envRefRE.FindAllSubmatch(data, -1) {
			env.WriteString(string(m[1]) + "=" + fuzzSecret + "-" + string(m[1]) + "\n")
		}
		f.Add(data, env.String())
		f.Add(data, "")
	}
	f.Add([]byte("mcp_servers:\n  a:\n    url: os.environ/U\n"), "U=http://"+fuzzSecret+"@x/\x00\n")
	f.Add([]byte("mcp_servers:\n  "+strings.Repeat("x", 5000)+":\n    url: http://h/mcp\n"), "")
	f.Add([]byte(strings.Repeat("- ", 5000)+"x"), "")
	f.Add([]byte(strings.Repeat("[", 20000)), "")
	f.Add([]byte("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"), "")
	f.Add([]byte("mcp_servers: &s\n  a:\n    url: http://h/mcp\n  b: *s\n"), "")
	f.Add([]byte("mcp_servers:\n  a: {url: http://h/mcp}\n  A: {url: http://h/mcp}\n"), "")
	f.Add([]byte("general_settings: {mcp_tool_prefix_separator: \"\"}\n"), "MCP_TOOL_PREFIX_SEPARATOR=.\n")

	f.Fuzz(func(t *testing.T, data []byte, envText string) {
		env := parseFuzzEnv(envText)
		lookup := func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}
		const name = "config.yaml"
		file, err := Parse(name, data, lookup)
		if err != nil {
			if file != nil {
				t.Fatal("both a file and an error")
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Name != name || len(fe.Errs) == 0 {
				t.Fatalf("error %T %v is not a *FileError of %s listing problems", err, err, name)
			}
			for _, e := range fe.Errs {
				if e.Msg == "" {
					t.Fatalf("a problem without a message at %q", e.Path)
				}
				if e.Path == "" && !strings.HasPrefix(e.Msg, "invalid YAML") && !strings.HasPrefix(e.Msg, "the file must be") {
					t.Fatalf("a problem that names no path: %q", e.Msg)
				}
			}
			if !strings.HasPrefix(err.Error(), name+": ") {
				t.Fatalf("error %q does not start with the file's name", err)
			}
			for _, e := range fe.Errs {
				if strings.ContainsAny(e.Error(), "\r\n") && !strings.HasPrefix(e.Msg, "invalid YAML") {
					t.Fatalf("a problem that is not one line: %q", e.Error())
				}
			}
			checkNoSecret(t, data, err.Error())
			return
		}
		if file == nil {
			t.Fatal("neither a file nor an error")
		}
		for _, w := range file.Warnings {
			if !strings.HasPrefix(w, name+": ") || strings.ContainsAny(w, "\r\n") {
				t.Fatalf("warning %q is not one line starting with the file's name", w)
			}
			checkNoSecret(t, data, w)
		}
		seen := map[string]bool{}
		for _, s := range file.Servers {
			if CheckServerName(s.Name) != nil || !bus.ValidToken(s.Name) || seen[s.Name] {
				t.Fatalf("accepted the server name %q (valid token %v, repeated %v)", s.Name, bus.ValidToken(s.Name), seen[s.Name])
			}
			seen[s.Name] = true
			if s.Alias != "" && (CheckServerName(s.Alias) != nil || !bus.ValidToken(s.Alias)) {
				t.Fatalf("server %s: accepted the alias %q", s.Name, s.Alias)
			}
			if _, err := Provision(s, lookup); err != nil {
				t.Fatalf("server %s was accepted but does not provision: %v", s.Name, err)
			}
		}
		again, err := Parse(name, data, lookup)
		if err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
		if !reflect.DeepEqual(file, again) {
			t.Fatalf("two parses of the same file differ:\n%+v\n%+v", file, again)
		}
	})
}

// checkNoSecret fails if out shows the marker of an environment value. It
// checks only files that cannot spell the marker themselves (no marker, no
// escapes, no tags).
func checkNoSecret(t *testing.T, data []byte, out string) {
	t.Helper()
	if bytes.Contains(data, []byte(fuzzSecret)) || bytes.ContainsAny(data, `\!`) {
		return
	}
	if strings.Contains(out, fuzzSecret) {
		t.Fatalf("an environment value shows in %q", out)
	}
}

// parseFuzzEnv reads NAME=value lines.
func parseFuzzEnv(s string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}
