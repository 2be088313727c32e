package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Image is an image as Read finds it: every digest checked.
type Image struct {
	Ref    string // the tag, e.g. mcpbus:0.1.0
	Arch   string
	OS     string
	Config Config
	Files  map[string]File // the layer's entries by path ("usr/local/bin/mcpbus")
}

// File is one entry of the image's layer.
type File struct {
	Dir      bool
	Mode     int64
	UID, GID int
	Data     []byte
}

// Read reads an image Write made, checking that index.json, the manifest,
// the config and the layer agree with each other and with their digests,
// and that Docker's manifest.json names the same config and layer.
func Read(r io.Reader) (*Image, error) {
	blobs := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("image: %s: %w", h.Name, err)
		}
		blobs[h.Name] = b
	}
	if string(blobs["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		return nil, errors.New("image: no oci-layout 1.0.0")
	}
	var idx index
	if err := json.Unmarshal(blobs["index.json"], &idx); err != nil || len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("image: index.json must name one manifest (%v)", err)
	}
	var m manifest
	if err := blob(blobs, idx.Manifests[0], &m); err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	var cfg imageConfig
	if err := blob(blobs, m.Config, &cfg); err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	if len(m.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 || m.Layers[0].MediaType != mediaLayer {
		return nil, errors.New("image: want one gzipped layer")
	}
	if err := blob(blobs, m.Layers[0], nil); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blobs["blobs/sha256/"+strings.TrimPrefix(m.Layers[0].Digest, "sha256:")]))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	layer, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	if digest(layer) != cfg.RootFS.DiffIDs[0] {
		return nil, errors.New("image: the layer is not the config's diff id")
	}
	var docker []dockerManifest
	if err := json.Unmarshal(blobs["manifest.json"], &docker); err != nil || len(docker) != 1 {
		return nil, fmt.Errorf("image: manifest.json must name one image (%v)", err)
	}
	ref := idx.Manifests[0].Annotations["io.containerd.image.name"]
	if d := docker[0]; d.Config != "blobs/sha256/"+strings.TrimPrefix(m.Config.Digest, "sha256:") ||
		len(d.Layers) != 1 || d.Layers[0] != "blobs/sha256/"+strings.TrimPrefix(m.Layers[0].Digest, "sha256:") ||
		len(d.RepoTags) != 1 || d.RepoTags[0] != ref {
		return nil, errors.New("image: manifest.json and index.json disagree")
	}
	img := &Image{Ref: ref, Arch: cfg.Architecture, OS: cfg.OS, Config: cfg.Config, Files: map[string]File{}}
	lr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("image: layer: %w", err)
		}
		f := File{Dir: h.Typeflag == tar.TypeDir, Mode: h.Mode, UID: h.Uid, GID: h.Gid}
		if !f.Dir {
			if f.Data, err = io.ReadAll(lr); err != nil {
				return nil, fmt.Errorf("image: layer: %s: %w", h.Name, err)
			}
		}
		img.Files[strings.TrimSuffix(h.Name, "/")] = f
	}
	return img, nil
}

// blob finds d's blob, checks its size and digest, and decodes it into v
// (nil: only checked).
func blob(blobs map[string][]byte, d descriptor, v any) error {
	b, ok := blobs["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
	if !ok {
		return fmt.Errorf("%s is missing", d.Digest)
	}
	if int64(len(b)) != d.Size || digest(b) != d.Digest {
		return fmt.Errorf("%s does not match its descriptor", d.Digest)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}
