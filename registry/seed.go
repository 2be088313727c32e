// Package registry is the registry service: the upstream servers live in the KV
// bucket bus.BucketServers, seeded from the config file, and lookups are answered
// from an in-memory copy fed by a KV watch (servercache.Cache).
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
// file without clobbering them; so is the operations state (drain, canary)
// of the file's servers where the file does not set it (keepOperations). A record is rewritten only when it changed
// (sealing is deterministic), so a restart does not wake every watcher.
//
// A record still holding a literal credential (written before credentials
// were sealed), config-made or API-made, is written again sealed, and, with
// js, its earlier revisions are purged from the bucket's history, so no
// plain-text copy stays behind.
func Seed(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, specs []bus.ServerSpec, secrets *bus.SecretKey, log *slog.Logger) error {
	want := make(map[string]bool, len(specs))
	for _, s := range specs {
		s.Source = "config"
		want[s.Name] = true
		cur, err := kv.Get(ctx, s.Name)
		if err == nil {
			keepOperations(&s, cur.Value()) // seed_ops.go
		}
		s, serr := secrets.Seal(s)
		if serr != nil {
			return fmt.Errorf("registry: %w", serr)
		}
		data, merr := json.Marshal(s)
		if merr != nil {
			return merr
		}
		if err == nil && string(cur.Value()) == string(data) {
			continue
		}
		if _, err := kv.Put(ctx, s.Name, data); err != nil {
			return fmt.Errorf("registry: store server %q: %w", s.Name, err)
		}
		if err == nil && plainText(cur.Value()) {
			purgeHistory(ctx, js, s.Name, log)
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
		if json.Unmarshal(e.Value(), &s) == nil && s.Source != "config" && len(bus.LiteralSecrets(s)) > 0 && secrets != nil {
			if err := reseal(ctx, js, kv, s, e.Revision(), secrets, log); err != nil {
				return err
			}
			continue
		}
		if json.Unmarshal(e.Value(), &s) == nil && s.Source == "config" {
			if err := kv.Delete(ctx, name); err != nil {
				return fmt.Errorf("registry: remove server %q: %w", name, err)
			}
			log.Info("registry: removed server no longer in the config file", "server", name)
		}
	}
	return nil
}

// plainText reports whether a stored record holds a literal credential.
func plainText(value []byte) bool {
	var s bus.ServerSpec
	return json.Unmarshal(value, &s) == nil && len(bus.LiteralSecrets(s)) > 0
}

// reseal writes an API-made record from before sealing again, sealed, and
// purges its plain-text revisions.
func reseal(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, s bus.ServerSpec, rev uint64, secrets *bus.SecretKey, log *slog.Logger) error {
	sealed, err := secrets.Seal(s)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	data, _ := json.Marshal(sealed)
	if _, err := kv.Update(ctx, s.Name, data, rev); err != nil {
		log.Warn("registry: could not seal the credentials of a stored server; will try at the next start", "server", s.Name, "err", err)
		return nil
	}
	purgeHistory(ctx, js, s.Name, log)
	log.Info("registry: sealed the credentials of a server stored before sealing", "server", s.Name)
	return nil
}

// purgeHistory drops every revision of name but the latest from the
// servers bucket's stream.
func purgeHistory(ctx context.Context, js jetstream.JetStream, name string, log *slog.Logger) {
	if js == nil {
		return
	}
	st, err := js.Stream(ctx, bus.KVStream(bus.BucketServers))
	if err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSubject(bus.KVSubject(bus.BucketServers, name)), jetstream.WithPurgeKeep(1))
	}
	if err != nil {
		log.Warn("registry: could not purge a server's plain-text history", "server", name, "err", err)
	}
}
