package signing

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Keyring follows bus.BucketSigningKeys: the current key (with its private
// half in a process holding the secret key: a worker) and the JWKS of the
// current and previous public keys (what an ingress serves). It is safe
// for concurrent use; reads are lock-free.
type Keyring struct {
	secrets *bus.SecretKey
	log     *slog.Logger

	cur  atomic.Pointer[Key]
	jwks atomic.Pointer[[]byte] // nil: no key yet

	mu   sync.Mutex
	keys map[string]*Key // by record name
}

// Follow starts following the bucket on nc until ctx ends: keys are the
// records to read (bus.SigningKeyCurrent for a worker; both for an
// ingress), secrets opens the private half (nil: public halves only). It
// returns at once: until the registry has made the bucket and the key,
// Current is nil and JWKS empty.
func Follow(ctx context.Context, nc *nats.Conn, secrets *bus.SecretKey, keys []string, log *slog.Logger) *Keyring {
	if log == nil {
		log = slog.Default()
	}
	r := &Keyring{secrets: secrets, log: log, keys: map[string]*Key{}}
	go r.follow(ctx, nc, keys)
	return r
}

func (r *Keyring) follow(ctx context.Context, nc *nats.Conn, keys []string) {
	wait := time.Second
	for {
		f, err := bus.FollowKV(ctx, nc, bus.BucketSigningKeys, keys, r.apply)
		if err == nil {
			<-ctx.Done()
			f.Stop()
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("signed calls: cannot follow the signing key bucket; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// apply takes one record; a record that does not decode is dropped with a
// warning (the key it would replace stays).
func (r *Keyring) apply(e bus.KVEntry) {
	var k *Key
	if !e.Deleted {
		var err error
		if k, err = decodeRecord(e.Key, e.Value, r.secrets); err != nil {
			r.log.Error("signed calls: ignoring a signing key record", "err", err)
			return
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if k == nil {
		delete(r.keys, e.Key)
	} else {
		r.keys[e.Key] = k
	}
	if e.Key == bus.SigningKeyCurrent {
		r.cur.Store(k)
	}
	r.jwks.Store(r.render())
}

// render is the JWKS of the keys held, current first; nil when none.
func (r *Keyring) render() *[]byte { return renderJWKS(r.keys) }

// FetchJWKS reads the public keys from the bucket on nc (MSG.GET) and
// returns their JWKS, current first; nil when there is none (signed calls
// are off, or the registry has not made the key yet). A record that is not
// the registry's is left out, and logged.
func FetchJWKS(ctx context.Context, nc *nats.Conn, log *slog.Logger) ([]byte, error) {
	keys := map[string]*Key{}
	for _, name := range []string{bus.SigningKeyCurrent, bus.SigningKeyPrevious} {
		e, ok, err := bus.KVGet(ctx, nc, bus.BucketSigningKeys, name)
		if err != nil {
			return nil, err
		}
		if !ok || e.Deleted {
			continue
		}
		k, err := decodeRecord(name, e.Value, nil)
		if err != nil {
			log.Error("signed calls: leaving a signing key out of the JWKS", "err", err)
			continue
		}
		keys[name] = k
	}
	if b := renderJWKS(keys); b != nil {
		return *b, nil
	}
	return nil, nil
}

func renderJWKS(keys map[string]*Key) *[]byte {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	seen := map[string]bool{}
	for _, name := range []string{bus.SigningKeyCurrent, bus.SigningKeyPrevious} {
		k := keys[name]
		if k == nil || seen[k.Kid] {
			continue
		}
		seen[k.Kid] = true
		if jwk, err := PublicJWK(k.Kid, k.Public); err == nil {
			set.Keys = append(set.Keys, jwk)
		}
	}
	if len(set.Keys) == 0 {
		return nil
	}
	b := mustJSON(set)
	return &b
}

// Current is the key to sign with; nil until there is one (or, without
// the secret key, always without its private half).
func (r *Keyring) Current() *Key { return r.cur.Load() }

// JWKS is the JSON Web Key Set of the current and previous public keys;
// nil until there is a key.
func (r *Keyring) JWKS() []byte {
	if b := r.jwks.Load(); b != nil {
		return *b
	}
	return nil
}

// Static is a Keyring holding k alone (tests, and a process that made the
// key itself).
func Static(k *Key) *Keyring {
	r := &Keyring{log: slog.Default(), keys: map[string]*Key{bus.SigningKeyCurrent: k}}
	r.cur.Store(k)
	r.jwks.Store(r.render())
	return r
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // records and key sets always marshal
	}
	return b
}
