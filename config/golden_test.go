package config

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite the want files in testdata/*.txtar")

// secretMarker appears in every credential and environment value in
// testdata; no error or warning may ever contain it.
const secretMarker = "SECRET"

// TestGolden loads config.yaml from each testdata/*.txtar, with the variables
// in its optional env file (NAME=value lines), and compares the error, or
// the warnings when it loads, with want.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := map[string][]byte{}
			for _, f := range ar.Files {
				parts[f.Name] = f.Data
			}
			data, ok := parts["config.yaml"]
			if !ok {
				t.Fatal("no config.yaml in archive")
			}
			got := run(data, parseEnv(string(parts["env"])))
			if strings.Contains(got, secretMarker) {
				t.Errorf("output leaks a secret:\n%s", got)
			}
			if *update {
				replaced := false
				for i := range ar.Files {
					if ar.Files[i].Name == "want" {
						ar.Files[i].Data = []byte(got)
						replaced = true
					}
				}
				if !replaced {
					ar.Files = append(ar.Files, txtar.File{Name: "want", Data: []byte(got)})
				}
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := string(parts["want"]); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// run parses data and renders the outcome as the want file holds it.
func run(data []byte, env map[string]string) string {
	f, err := Parse("config.yaml", data, mapEnv(env))
	if err != nil {
		return "error:\n" + err.Error() + "\n"
	}
	if len(f.Warnings) == 0 {
		return "ok\n"
	}
	return "ok, warnings:\n" + strings.Join(f.Warnings, "\n") + "\n"
}

func parseEnv(s string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	return env
}

func mapEnv(m map[string]string) LookupEnv {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}
