package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every flag of every command is documented: in docs/ (or the README), as
// `--flag` or in a usage line ([--flag ...]). The flags are read from each command's own --help, so a new
// flag without its line fails here.
func TestEveryFlagIsDocumented(t *testing.T) {
	var docs strings.Builder
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "..", "README.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	for _, cmd := range [][]string{{"serve"}, {"worker"}, {"keys", "create"}, {"keys", "list"}, {"keys", "revoke"}, {"usage", "tail"}, {"usage", "top"}, {"audit", "tail"}, {"audit", "export"}, {"replay"}, {"health"}, {"nats-config"}} {
		code, stdout, stderr := runCLI(append(cmd, "--help")...)
		if code != 0 {
			t.Fatalf("%v --help: exit %d %s", cmd, code, stderr)
		}
		flags := flagLine.FindAllStringSubmatch(stdout, -1)
		if len(flags) == 0 {
			t.Fatalf("%v --help lists no flags:\n%s", cmd, stdout)
		}
		for _, f := range flags {
			mention := regexp.MustCompile("(^|[`\\[\\s(])--" + regexp.QuoteMeta(f[1]) + "([^a-z0-9-]|$)")
			if !mention.MatchString(docs.String()) {
				t.Errorf("mcpbus %s --%s is not documented (docs/*.md or README.md as `--%[2]s`)", strings.Join(cmd, " "), f[1])
			}
		}
	}
}
