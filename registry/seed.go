// Package registry is the registry service: the upstream servers live in the KV
// bucket bus.BucketServers, seeded from the config file, and lookups are answered
// from an in-memory copy fed by a KV watch (bus.ServerCache).
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Seed writes the config file's servers into kv, their literal credentials
// sealed with secrets (bus/secrets.go; without a key such a server is an
// error), and removes config-made records that the file no longer has.
// Records made through the API are left alone, so a restart re-applies the
// file without clobbering them. A record is rewritten only when it changed
// (sealing is deterministic), so a restart does not wake every watcher.
func Seed(ctx context.Context, kv jetstream.KeyValue, specs []bus.ServerSpec, secrets *bus.SecretKey, log *slog.Logger) error {
	want := make(map[string]bool, len(specs))
	for _, s := range specs {
		s.Source = "config"
		want[s.Name] = true
		s, err := secrets.Seal(s)
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if cur, err := kv.Get(ctx, s.Name); err == nil && string(cur.Value()) == string(data) {
			continue
		}
		if _, err := kv.Put(ctx, s.Name, data); err != nil {
			return fmt.Errorf("registry: store server %q: %w", s.Name, err)
		}
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("registry: list servers: %w", err)
	}
	for name := range keys.Keys() {
		if want[name] {
			continue
		}
		e, err := kv.Get(ctx, name)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		} else if err != nil {
			return fmt.Errorf("registry: read server %q: %w", name, err)
		}
		var s bus.ServerSpec
		if json.Unmarshal(e.Value(), &s) == nil && s.Source == "config" {
			if err := kv.Delete(ctx, name); err != nil {
				return fmt.Errorf("registry: remove server %q: %w", name, err)
			}
			log.Info("registry: removed server no longer in the config file", "server", name)
		}
	}
	return nil
}
