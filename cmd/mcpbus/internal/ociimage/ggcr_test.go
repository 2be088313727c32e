package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// An independent implementation (go-containerregistry, what crane, ko and
// many registries use) reads the archive both ways an engine would: as
// `docker load` does (manifest.json) and as an OCI image layout (podman,
// skopeo, containerd), and validates every digest, size and the config.
func TestImageReadsInGoContainerRegistry(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testSpec()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag("mcpbus:1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("as docker load reads it: %v", err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("docker form: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Config.Healthcheck == nil || cf.OS != "linux" {
		t.Errorf("config as read: user %q, healthcheck %+v, os %q", cf.Config.User, cf.Config.Healthcheck, cf.OS)
	}

	dir := t.TempDir()
	untar(t, buf.Bytes(), dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("as an OCI layout: %v", err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("OCI form: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != "mcpbus:1.2.3" {
		t.Fatalf("index: %+v %v", im, err)
	}
}

// untar extracts the archive's regular files and directories under dir.
func untar(t *testing.T, b []byte, dir string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir) {
			t.Fatalf("%s leaves the directory", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
