// Package ociimage writes mcpbus's container image without a container
// engine: an OCI image layout (oci-layout, index.json, blobs/sha256/...) in
// one tar file, with Docker's manifest.json beside it, so both `docker load`
// and OCI tools (podman, skopeo, containerd) take it. Base images cannot be
// pulled where mcpbus is built and tested, and none is needed: the image is
// the static binary, a CA bundle for HTTPS upstreams, and a non-root user.
// deploy/image/Dockerfile builds the same image from source where an engine
// runs.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"
)

// Where things are in the image.
const (
	BinaryPath = "/usr/local/bin/mcpbus"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	DataDir    = "/data"
	ConfigPath = "/etc/mcpbus/config.yaml"
	// UID and GID of the user the image runs as (65532, "nonroot", as
	// distroless images use).
	UID = 65532
)

// Spec is what goes into the image.
type Spec struct {
	Binary   []byte // the static mcpbus binary (CGO_ENABLED=0)
	CABundle []byte // PEM CA certificates for HTTPS upstreams
	Version  string // the image's tag and version label
	Arch     string // GOARCH of the binary; "" is runtime.GOARCH
	// Created stamps the config and every file; the zero value is the Unix
	// epoch, so the same inputs give the same image, byte for byte.
	Created time.Time
}

// Config is the part of an OCI image config mcpbus sets (the runtime's
// defaults: user, command, ports, volume, health check).
type Config struct {
	User         string              `json:"User"`
	Entrypoint   []string            `json:"Entrypoint"`
	Cmd          []string            `json:"Cmd"`
	Env          []string            `json:"Env"`
	WorkingDir   string              `json:"WorkingDir"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	Volumes      map[string]struct{} `json:"Volumes"`
	Labels       map[string]string   `json:"Labels"`
	Healthcheck  *Healthcheck        `json:"Healthcheck"`
}

// Healthcheck is Docker's health check, as the image config carries it
// (durations in nanoseconds).
type Healthcheck struct {
	Test        []string      `json:"Test"`
	Interval    time.Duration `json:"Interval"`
	Timeout     time.Duration `json:"Timeout"`
	StartPeriod time.Duration `json:"StartPeriod"`
	Retries     int           `json:"Retries"`
}

type imageConfig struct {
	Created      time.Time `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       Config    `json:"config"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// dockerManifest is one entry of Docker's manifest.json (docker save/load).
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// DefaultConfig is what the image runs: `mcpbus serve` on all interfaces
// (inside the container) with the config file mounted at ConfigPath and the
// JetStream store on the DataDir volume; any service or `mcpbus worker` by
// another command. The root filesystem can be read-only: the process writes
// only under DataDir.
func DefaultConfig(version string) Config {
	return Config{
		User:         fmt.Sprintf("%d:%d", UID, UID),
		Entrypoint:   []string{BinaryPath},
		Cmd:          []string{"serve", "--config", ConfigPath, "--listen", "0.0.0.0:4000", "--data", DataDir},
		Env:          []string{"PATH=/usr/local/bin", "SSL_CERT_FILE=" + CAPath},
		WorkingDir:   DataDir,
		ExposedPorts: map[string]struct{}{"4000/tcp": {}},
		Volumes:      map[string]struct{}{DataDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "mcpbus",
			"org.opencontainers.image.version": version,
		},
		// `mcpbus health` probes MCPBUS_HEALTH_URL, by default serve's
		// liveness endpoint; a service without the ingress sets it to its
		// --admin-listen.
		Healthcheck: &Healthcheck{Test: []string{"CMD", BinaryPath, "health"}, Interval: 10 * time.Second,
			Timeout: 5 * time.Second, StartPeriod: 10 * time.Second, Retries: 3},
	}
}

// Write writes the image for spec to w.
func Write(w io.Writer, spec Spec) error {
	if len(spec.Binary) == 0 {
		return fmt.Errorf("image: no binary")
	}
	if len(spec.CABundle) == 0 {
		return fmt.Errorf("image: no CA bundle (HTTPS upstreams could not be verified)")
	}
	if spec.Version == "" {
		return fmt.Errorf("image: no version")
	}
	arch := spec.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	created := spec.Created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	tarLayer, err := rootfs(spec, created)
	if err != nil {
		return err
	}
	layer, err := gzipped(tarLayer)
	if err != nil {
		return err
	}
	layerDigest := digest(layer)

	cfg := imageConfig{Created: created, Architecture: arch, OS: "linux", Config: DefaultConfig(spec.Version)}
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{digest(tarLayer)} // of the uncompressed layer
	cfg.History = append(cfg.History, struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	}{created, "mcpbus ociimage: static binary, CA bundle, user " + fmt.Sprint(UID)})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	m := manifest{SchemaVersion: 2, MediaType: mediaManifest,
		Config: descriptor{MediaType: mediaConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))},
		Layers: []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: int64(len(layer))}}}
	mJSON, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ref := "mcpbus:" + spec.Version
	idx := index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: []descriptor{{
		MediaType: mediaManifest, Digest: digest(mJSON), Size: int64(len(mJSON)),
		Annotations: map[string]string{"org.opencontainers.image.ref.name": spec.Version, "io.containerd.image.name": ref},
		Platform:    &platform{Architecture: arch, OS: "linux"},
	}}}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	docker, err := json.Marshal([]dockerManifest{{Config: blobPath(cfgJSON), RepoTags: []string{ref}, Layers: []string{blobPath(layer)}}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{blobPath(layer), layer},
		{blobPath(cfgJSON), cfgJSON},
		{blobPath(mJSON), mJSON},
		{"index.json", idxJSON},
		{"manifest.json", docker},
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755, ModTime: created}); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, f.data, 0o644, 0, created); err != nil {
			return err
		}
	}
	return tw.Close()
}

// rootfs is the image's one layer, an uncompressed tar.
func rootfs(spec Spec, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: owner, Gid: owner, ModTime: created})
	}
	steps := []func() error{
		func() error { return dir("etc/", 0o755, 0) },
		func() error {
			return writeFile(tw, "etc/passwd", []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:%s:/sbin/nologin\n", UID, UID, DataDir)), 0o644, 0, created)
		},
		func() error {
			return writeFile(tw, "etc/group", []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)), 0o644, 0, created)
		},
		func() error { return dir("etc/mcpbus/", 0o755, 0) },
		func() error { return dir("etc/ssl/", 0o755, 0) },
		func() error { return dir("etc/ssl/certs/", 0o755, 0) },
		func() error { return writeFile(tw, CAPath[1:], spec.CABundle, 0o644, 0, created) },
		func() error { return dir("usr/", 0o755, 0) },
		func() error { return dir("usr/local/", 0o755, 0) },
		func() error { return dir("usr/local/bin/", 0o755, 0) },
		func() error { return writeFile(tw, BinaryPath[1:], spec.Binary, 0o755, 0, created) },
		// The only place the process writes: the JetStream store (a
		// volume), and temporary files.
		func() error { return dir(DataDir[1:]+"/", 0o700, UID) },
		func() error { return dir("tmp/", 0o1777, 0) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipped compresses the layer; the gzip header carries no name and no time,
// so the same layer compresses to the same bytes.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeFile(tw *tar.Writer, name string, data []byte, mode int64, owner int, mtime time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)),
		Uid: owner, Gid: owner, ModTime: mtime}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string {
	sum := sha256.Sum256(b)
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}
