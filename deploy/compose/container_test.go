package compose

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// A container's files, on this machine: a directory holding each of a
// service's mounts at its target (bind mounts copied, named volumes linked to
// a directory shared by every service that mounts the volume), so a command
// of compose.yaml runs here with its paths under that directory.

// volumes are the named volumes of one run: name -> directory.
type volumes map[string]string

func (v volumes) dir(t *testing.T, name string) string {
	t.Helper()
	if d, ok := v[name]; ok {
		return d
	}
	d := t.TempDir()
	v[name] = d
	return d
}

// rootfs lays out s's mounts under a new directory and returns it.
func rootfs(t *testing.T, s types.ServiceConfig, vols volumes) string {
	t.Helper()
	root := t.TempDir()
	for _, m := range s.Volumes {
		at := filepath.Join(root, m.Target)
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case types.VolumeTypeBind:
			data, err := os.ReadFile(m.Source)
			if err != nil {
				t.Fatalf("service %s mounts %s at %s: %v", s.Name, m.Source, m.Target, err)
			}
			if err := os.WriteFile(at, data, 0o600); err != nil {
				t.Fatal(err)
			}
		case types.VolumeTypeVolume:
			if err := os.Symlink(vols.dir(t, m.Source), at); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("service %s: mount of type %s at %s", s.Name, m.Type, m.Target)
		}
	}
	return root
}

// inRoot rewrites the arguments that are paths under one of s's mounts to
// the same paths under root.
func inRoot(root string, s types.ServiceConfig, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		for _, m := range s.Volumes {
			if a == m.Target || strings.HasPrefix(a, m.Target+"/") {
				out[i] = filepath.Join(root, a)
			}
		}
	}
	return out
}

// environ is s's environment as a process's, and nothing else.
func environ(s types.ServiceConfig) []string {
	var out []string
	for k, v := range env(s) {
		out = append(out, k+"="+v)
	}
	return out
}

// runUsersInit runs the one-shot that writes the NATS nodes' bus users (the
// service nats-users): its command, its environment, its mounts. It returns
// the service.
func runUsersInit(t *testing.T, p *types.Project, vols volumes) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService("nats-users")
	if err != nil {
		t.Fatal(err)
	}
	root := rootfs(t, s, vols)
	cmd := exec.Command(binary(t), inRoot(root, s, s.Command)...)
	cmd.Env = environ(s)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nats-users: mcpbus %s: %v\n%s", strings.Join(s.Command, " "), err, out)
	}
	return s
}

// natsConfigPath is the config file a NATS node's command names (inside its
// container).
func natsConfigPath(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	if len(s.Command) != 2 || s.Command[0] != "--config" {
		t.Fatalf("NATS node %s: command %q, want --config FILE", s.Name, s.Command)
	}
	return s.Command[1]
}
