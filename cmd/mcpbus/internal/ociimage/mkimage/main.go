// Command mkimage writes mcpbus's container image from a static binary
// (`make image`): an OCI image layout in one tar, which `docker load`,
// `podman load` and `skopeo copy oci-archive:...` take. With -verify it reads
// the image back, checks every digest, and runs the binary it holds.
package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/ociimage"
)

func main() {
	bin := flag.String("bin", "", "the static mcpbus binary (CGO_ENABLED=0)")
	ca := flag.String("ca", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle to put in the image")
	out := flag.String("out", "", "image archive to write")
	arch := flag.String("arch", "", "GOARCH of the binary (default: this machine's)")
	verify := flag.Bool("verify", true, "read the image back, check its digests and run its binary")
	flag.Parse()
	if err := run(*bin, *ca, *out, *arch, *verify); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(bin, ca, out, arch string, verify bool) error {
	if bin == "" || out == "" {
		return errors.New("-bin and -out are required")
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := static(bin); err != nil {
		return err
	}
	bundle, err := os.ReadFile(ca)
	if err != nil {
		return fmt.Errorf("CA bundle: %w", err)
	}
	version, err := versionOf(bin)
	if err != nil {
		return err
	}
	spec := ociimage.Spec{Binary: binary, CABundle: bundle, Version: version, Arch: arch}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		spec.Created = time.Unix(sec, 0).UTC()
	}
	var buf bytes.Buffer
	if err := ociimage.Write(&buf, spec); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if verify {
		if err := check(out, version); err != nil {
			return fmt.Errorf("verify %s: %w", out, err)
		}
	}
	fmt.Printf("wrote %s: mcpbus:%s, %d bytes (load with: docker load -i %s)\n", out, version, buf.Len(), out)
	return nil
}

// static refuses a binary that needs a dynamic loader: the image has none.
func static(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not an ELF binary: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// versionOf asks the binary its version.
func versionOf(bin string) (string, error) {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w", bin, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "mcpbus" {
		return "", fmt.Errorf("%s version said %q", bin, out)
	}
	return f[1], nil
}

// check reads the image back and runs the binary it holds.
func check(path, version string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := ociimage.Read(f)
	if err != nil {
		return err
	}
	bin, ok := img.Files[strings.TrimPrefix(ociimage.BinaryPath, "/")]
	if !ok {
		return errors.New("no binary in the image")
	}
	dir, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "mcpbus")
	if err := os.WriteFile(p, bin.Data, 0o755); err != nil {
		return err
	}
	got, err := versionOf(p)
	if err != nil {
		return fmt.Errorf("the image's binary: %w", err)
	}
	if got != version || img.Ref != "mcpbus:"+version {
		return fmt.Errorf("the image is %s holding version %s, want %s", img.Ref, got, version)
	}
	return nil
}
