package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// secretKeyFile holds the key a gateway on its own embedded NATS seals
// credentials with when the operator sets none (bus/secrets.go).
const secretKeyFile = "secret.key"

// secretKey is the key this process seals and opens server credentials with:
// MCPBUS_SALT_KEY (or LITELLM_SALT_KEY) when set; else, for a gateway on its
// own embedded NATS, a random key kept in DataDir/secret.key (mode 0600, next
// to the JetStream store it protects, made on the first start); else none,
// and a literal credential is refused with the variable to set (processes of
// a split deployment must share one key).
func secretKey(o Options) (*bus.SecretKey, string, error) {
	k, err := bus.SecretKeyFromEnv(o.Env)
	if err != nil || k != nil {
		return k, "environment", err
	}
	if o.NATSURL != "" || o.DataDir == "" {
		return nil, "", nil
	}
	path := filepath.Join(o.DataDir, secretKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, "", fmt.Errorf("secret key: %w", err)
		}
		data = []byte(bus.NewPassword() + "\n")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("secret key: %w", err)
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, "", fmt.Errorf("secret key: %w", werr)
		}
	} else if err != nil {
		return nil, "", fmt.Errorf("secret key: %w", err)
	}
	k, err = bus.NewSecretKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, "", fmt.Errorf("secret key %s: %w", path, err)
	}
	return k, path, nil
}
