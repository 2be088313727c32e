package natsnode

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// A process that joins an external NATS proves who it is with one of: a user
// and password, a .creds file (a JWT and its nkey, for clusters secured with
// an operator), or an nkey seed file; and, where the cluster speaks TLS,
// verifies the servers with TLSCA and shows a client certificate
// (TLSCert, TLSKey) where they ask for one. Each comes from a flag, else
// from the environment (CredentialsFromEnv), never from a URL or a config
// value that is logged.

// The environment variables CredentialsFromEnv reads.
const (
	EnvUser     = "MCPBUS_NATS_USER"
	EnvPassword = "MCPBUS_NATS_PASSWORD"
	EnvCreds    = "MCPBUS_NATS_CREDS"
	EnvNKey     = "MCPBUS_NATS_NKEY"
	EnvTLSCA    = "MCPBUS_NATS_TLS_CA"
	EnvTLSCert  = "MCPBUS_NATS_TLS_CERT"
	EnvTLSKey   = "MCPBUS_NATS_TLS_KEY"
)

// CredentialsFromEnv fills, from the environment, what o does not set
// already: who joins (a user and password, a .creds file or an nkey seed
// file; only when o names none, so a flag wins over the environment) and the
// TLS files. Secrets belong in the environment or in files, not in flags:
// other users can read a process's flags in ps.
func CredentialsFromEnv(o ConnectOptions, lookup func(string) (string, bool)) ConnectOptions {
	get := func(k string) string { v, _ := lookup(k); return v }
	fill := func(p *string, k string) {
		if *p == "" {
			*p = get(k)
		}
	}
	if !o.NamesWhoJoins() {
		o.User, o.Password = get(EnvUser), get(EnvPassword)
		o.CredsFile, o.NKeyFile = get(EnvCreds), get(EnvNKey)
	}
	fill(&o.TLSCA, EnvTLSCA)
	fill(&o.TLSCert, EnvTLSCert)
	fill(&o.TLSKey, EnvTLSKey)
	return o
}

// NamesWhoJoins reports whether o already says who joins (a user, a .creds
// file or an nkey seed): a lower level of settings then gives none of its own.
func (o ConnectOptions) NamesWhoJoins() bool {
	return o.User != "" || o.CredsFile != "" || o.NKeyFile != ""
}

// security is the nats.go options for o's credentials and TLS; an error
// names the setting that is wrong.
func (o ConnectOptions) security() ([]nats.Option, error) {
	var opts []nats.Option
	ways := 0
	if o.User != "" {
		ways++
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.CredsFile != "" {
		ways++
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		ways++
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file (--nats-nkey, %s) %s: %w", EnvNKey, o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if ways > 1 {
		return nil, errors.New("give one way to join NATS: a user and password, a .creds file (--nats-creds) or an nkey seed (--nats-nkey)")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("a NATS client certificate needs both --nats-tls-cert and --nats-tls-key")
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}
