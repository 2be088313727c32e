package ociimage

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testSpec() Spec {
	return Spec{Binary: []byte("\x7fELF not really"), CABundle: []byte("-----BEGIN CERTIFICATE-----\n"), Version: "1.2.3", Arch: "amd64"}
}

// The image runs as a non-root user, holds the binary, the CA bundle and a
// data directory that user owns, and checks its health with `mcpbus health`.
func TestImageContents(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testSpec()); err != nil {
		t.Fatal(err)
	}
	img, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "mcpbus:1.2.3" || img.Arch != "amd64" || img.OS != "linux" {
		t.Errorf("ref %s, platform %s/%s", img.Ref, img.OS, img.Arch)
	}
	c := img.Config
	if c.User != "65532:65532" || strings.HasPrefix(c.User, "0") {
		t.Errorf("user %q, want a non-root one", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != BinaryPath || len(c.Cmd) == 0 || c.Cmd[0] != "serve" {
		t.Errorf("entrypoint %v cmd %v", c.Entrypoint, c.Cmd)
	}
	if c.Healthcheck == nil || strings.Join(c.Healthcheck.Test, " ") != "CMD "+BinaryPath+" health" || c.Healthcheck.Interval <= 0 {
		t.Errorf("healthcheck %+v", c.Healthcheck)
	}
	if _, ok := c.Volumes[DataDir]; !ok || c.WorkingDir != DataDir {
		t.Errorf("volumes %v, workdir %q: the data directory must be a volume", c.Volumes, c.WorkingDir)
	}
	if c.Labels["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("labels %v", c.Labels)
	}
	bin := img.Files["usr/local/bin/mcpbus"]
	if string(bin.Data) != string(testSpec().Binary) || bin.Mode != 0o755 || bin.UID != 0 {
		t.Errorf("binary: mode %o uid %d, %d bytes", bin.Mode, bin.UID, len(bin.Data))
	}
	if ca := img.Files["etc/ssl/certs/ca-certificates.crt"]; string(ca.Data) != string(testSpec().CABundle) {
		t.Error("CA bundle missing")
	}
	if d := img.Files["data"]; !d.Dir || d.UID != UID || d.Mode != 0o700 {
		t.Errorf("data dir %+v, want owned by %d", d, UID)
	}
	if !strings.Contains(string(img.Files["etc/passwd"].Data), "nonroot:x:65532:65532:") {
		t.Error("no nonroot user in /etc/passwd")
	}
}

// The same inputs give the same bytes; a different binary a different image.
func TestImageIsReproducible(t *testing.T) {
	var a, b, c bytes.Buffer
	if err := Write(&a, testSpec()); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, testSpec()); err != nil {
		t.Fatal(err)
	}
	s := testSpec()
	s.Binary = append(s.Binary, '!')
	s.Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := Write(&c, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same inputs differ")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("a different binary gave the same image")
	}
}

// Read refuses an image whose blobs do not match their digests.
func TestReadChecksDigests(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, testSpec()); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	i := bytes.Index(b, []byte("\x1f\x8b")) // the gzipped layer, the first blob
	if i < 0 {
		t.Fatal("layer not found in the archive")
	}
	b[i+40] ^= 0xff // a flipped byte in the layer
	if _, err := Read(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("tampered layer: %v", err)
	}
}

func TestWriteRefusesMissingParts(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"binary":  func(s *Spec) { s.Binary = nil },
		"CA":      func(s *Spec) { s.CABundle = nil },
		"version": func(s *Spec) { s.Version = "" },
	} {
		s := testSpec()
		mod(&s)
		if err := Write(&bytes.Buffer{}, s); err == nil {
			t.Errorf("no %s: written", name)
		}
	}
}
