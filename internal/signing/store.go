package signing

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// SourceEnv and SourceGenerated are where a key came from.
const (
	SourceEnv       = "MCP_JWT_SIGNING_KEY"
	SourceGenerated = "generated"
)

// Ensure makes sure kv (bus.EnsureSigningKeyBucket) holds the current
// signing key, and returns it; the registry calls it at its start.
//
// With an operator key (MCP_JWT_SIGNING_KEY, config.SignedCalls.Key) that
// key becomes the current one; the key it replaces, if another, moves to
// "previous", so the JWKS still serves it while tokens it signed may be
// valid: rotating is setting a new MCP_JWT_SIGNING_KEY and restarting the
// registry. Without one, the current key stays; when there is none, one is
// generated and created with KV Create: of two registries racing, one
// creates it and the other takes it.
//
// secrets seals the private half; without it the key cannot be kept in the
// bus and Ensure fails, naming the variable to set.
func Ensure(ctx context.Context, kv jetstream.KeyValue, secrets *bus.SecretKey, operator *rsa.PrivateKey, log *slog.Logger) (*Key, error) {
	if secrets == nil {
		return nil, fmt.Errorf("signed calls: the signing key is kept sealed in the bus, and this process has no secret key: set %s (the same value on the registry and every worker)", bus.SecretKeyEnv[0])
	}
	if log == nil {
		log = slog.Default()
	}
	for attempt := 0; attempt < 5; attempt++ {
		k, retry, err := ensureOnce(ctx, kv, secrets, operator, log)
		if !retry {
			return k, err
		}
	}
	return nil, errors.New("signed calls: the signing key kept changing while this registry set it; is another registry running with another MCP_JWT_SIGNING_KEY?")
}

// ensureOnce is one attempt; retry says a concurrent write won and the
// bucket should be read again.
func ensureOnce(ctx context.Context, kv jetstream.KeyValue, secrets *bus.SecretKey, operator *rsa.PrivateKey, log *slog.Logger) (*Key, bool, error) {
	cur, err := kv.Get(ctx, bus.SigningKeyCurrent)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, false, fmt.Errorf("signed calls: reading the signing key: %w", err)
	}
	var have *Key
	if cur != nil {
		if have, err = decodeRecord(bus.SigningKeyCurrent, cur.Value(), secrets); err != nil && operator == nil {
			return nil, false, fmt.Errorf("signed calls: %w", err)
		}
	}
	if operator == nil {
		if have != nil {
			return have, false, nil
		}
		key, err := generate()
		if err != nil {
			return nil, false, err
		}
		return create(ctx, kv, secrets, key, SourceGenerated, log)
	}
	kid, err := Thumbprint(&operator.PublicKey)
	if err != nil {
		return nil, false, err
	}
	if have != nil && have.Kid == kid {
		return have, false, nil
	}
	if cur == nil {
		return create(ctx, kv, secrets, operator, SourceEnv, log)
	}
	if have != nil {
		// The replaced key stays in the JWKS as "previous".
		prev, err := publicOnly(cur.Value(), bus.SigningKeyPrevious)
		if err == nil {
			_, err = kv.Put(ctx, bus.SigningKeyPrevious, prev)
		}
		if err != nil {
			return nil, false, fmt.Errorf("signed calls: keeping the replaced key in the JWKS: %w", err)
		}
	}
	rec, err := newRecord(bus.SigningKeyCurrent, operator, SourceEnv, secrets)
	if err != nil {
		return nil, false, err
	}
	if _, err := kv.Update(ctx, bus.SigningKeyCurrent, mustJSON(rec), cur.Revision()); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongRevision(err) {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("signed calls: storing the signing key: %w", err)
	}
	log.Info("signed calls: signing key replaced; the previous one stays in the JWKS", "kid", kid, "previous_kid", kidOf(have))
	return &Key{Kid: kid, Public: &operator.PublicKey, Private: operator, Source: SourceEnv}, false, nil
}

// create stores key as the current one unless one is there already.
func create(ctx context.Context, kv jetstream.KeyValue, secrets *bus.SecretKey, key *rsa.PrivateKey, source string, log *slog.Logger) (*Key, bool, error) {
	rec, err := newRecord(bus.SigningKeyCurrent, key, source, secrets)
	if err != nil {
		return nil, false, err
	}
	if _, err := kv.Create(ctx, bus.SigningKeyCurrent, mustJSON(rec)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongRevision(err) {
			return nil, true, nil // another registry won: take its key
		}
		return nil, false, fmt.Errorf("signed calls: storing the signing key: %w", err)
	}
	log.Info("signed calls: signing key made", "kid", rec.Kid, "source", source)
	return &Key{Kid: rec.Kid, Public: &key.PublicKey, Private: key, Source: source}, false, nil
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

func kidOf(k *Key) string {
	if k == nil {
		return ""
	}
	return k.Kid
}
