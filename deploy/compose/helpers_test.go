// Package compose checks mcpbus's docker compose deployment (compose.yaml and
// the files it mounts) the way an operator would find it: loaded by the
// compose specification's own loader with .env.example, every mcpbus command
// parsed against the real binary's flags, and the whole deployment started on
// loopback (smoke_test.go).
package compose

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// natsImage names the NATS nodes: services on the official image.
const natsImage = "nats:"

// mcpbusImage is the image the compose file's mcpbus services use, as
// .env.example sets it.
const mcpbusImage = "mcpbus:latest"

var binOnce struct {
	sync.Once
	path string
	err  error
}

// binary is the mcpbus binary: MCPBUS_BIN, else built once from
// ../../cmd/mcpbus into a temporary directory.
func binary(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("MCPBUS_BIN"); b != "" {
		return b
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpbus-compose-test")
		if err != nil {
			binOnce.err = err
			return
		}
		binOnce.path = filepath.Join(dir, "mcpbus")
		cmd := exec.Command("go", "build", "-o", binOnce.path, ".")
		cmd.Dir = filepath.Join("..", "..", "cmd", "mcpbus")
		if out, err := cmd.CombinedOutput(); err != nil {
			binOnce.err = fmt.Errorf("go build ./cmd/mcpbus: %v\n%s", err, out)
		}
	})
	if binOnce.err != nil {
		t.Fatal(binOnce.err)
	}
	return binOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binOnce.path != "" {
		os.RemoveAll(filepath.Dir(binOnce.path))
	}
	os.Exit(code)
}

// envExample is .env.example as docker compose reads a .env file.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.GetEnvFromFile(nil, []string{".env.example"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// loadProject loads compose.yaml as `docker compose --env-file .env.example
// [--profile ...]` would, with no variable of this process's environment.
func loadProject(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"},
		cli.WithWorkingDirectory(wd),
		cli.WithEnvFiles(".env.example"),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load with .env.example: %v", err)
	}
	return p
}

// isMcpbus reports whether s runs the mcpbus image.
func isMcpbus(s types.ServiceConfig) bool { return s.Image == mcpbusImage }

// env is a service's environment, resolved.
func env(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// replicas is how many containers of s compose starts.
func replicas(s types.ServiceConfig) int {
	if s.Deploy != nil && s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

// hostPath is the file of the host that a bind mount of s shows at target.
func hostPath(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	t.Fatalf("service %s: no bind mount at %s", s.Name, target)
	return ""
}

// command is one mcpbus command line, parsed with the binary's flags.
type command struct {
	sub   string
	flags map[string]string // name -> value ("true" for a bool flag)
}

var helpCache sync.Map // subcommand -> map[flag]takesValue

// flagLine is a flag in Go's flag.PrintDefaults: "  -name type" or "  -name".
var flagLine = regexp.MustCompile(`^  -([a-z0-9-]+)(?: (\S+))?`)

// flagsOf is what `mcpbus SUB --help` lists: every flag, and whether it takes
// a value.
func flagsOf(t *testing.T, sub string) map[string]bool {
	t.Helper()
	if f, ok := helpCache.Load(sub); ok {
		return f.(map[string]bool)
	}
	out, err := exec.Command(binary(t), sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("mcpbus %s --help: %v\n%s", sub, err, out)
	}
	flags := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			flags[m[1]] = m[2] != ""
		}
	}
	if len(flags) == 0 {
		t.Fatalf("mcpbus %s --help lists no flags:\n%s", sub, out)
	}
	helpCache.Store(sub, flags)
	return flags
}

// parseCommand parses a service's command against the real binary's flags:
// an unknown flag, a flag without its value, or a stray argument fails.
func parseCommand(t *testing.T, service string, args []string) command {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("service %s has no command (the image would run serve on embedded NATS)", service)
	}
	c := command{sub: args[0], flags: map[string]string{}}
	known := flagsOf(t, c.sub)
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			t.Errorf("service %s: mcpbus %s takes no argument %q", service, c.sub, a)
			continue
		}
		takes, ok := known[name]
		if !ok {
			t.Errorf("service %s: mcpbus %s has no flag %s", service, c.sub, a)
			continue
		}
		switch {
		case hasValue:
		case !takes:
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			t.Errorf("service %s: %s needs a value", service, a)
		}
		c.flags[name] = value
	}
	return c
}

// mcpbusServices are the long-running mcpbus services of p (not the
// one-shot), sorted by name.
func mcpbusServices(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if isMcpbus(s) && s.Restart != "no" {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// natsNodes are p's NATS nodes, sorted by name.
func natsNodes(p *types.Project) []types.ServiceConfig {
	var out []types.ServiceConfig
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, natsImage) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b types.ServiceConfig) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
