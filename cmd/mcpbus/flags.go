package main

import (
	"flag"
	"io"
	"slices"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
)

// newFlagSet is a subcommand's flag set. Asked for help (-h, --help), it
// prints its flags on stdout and run exits 0 (flag.ErrHelp); a mistake is
// reported on stderr.
func newFlagSet(name string, args []string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if wantsHelp(args) {
		fs.SetOutput(stdout)
	}
	return fs
}

// wantsHelp reports whether args ask for help before any "--".
func wantsHelp(args []string) bool {
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[:i]
	}
	return slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
}

// natsSecurityFlags registers how a process proves itself to an external NATS
// and verifies it (internal/natsnode/secure.go). Files only: the secrets
// themselves go in files or the environment, never in flags, which any user
// can read in ps. What a flag leaves unset comes from the environment.
func natsSecurityFlags(fs *flag.FlagSet) *natsnode.ConnectOptions {
	o := &natsnode.ConnectOptions{}
	fs.StringVar(&o.CredsFile, "nats-creds", "", "NATS .creds file (JWT and nkey) to join an external NATS with (env "+natsnode.EnvCreds+")")
	fs.StringVar(&o.NKeyFile, "nats-nkey", "", "nkey seed file to join an external NATS with (env "+natsnode.EnvNKey+")")
	fs.StringVar(&o.TLSCA, "nats-tls-ca", "", "CA file that verifies the NATS servers' certificates (env "+natsnode.EnvTLSCA+")")
	fs.StringVar(&o.TLSCert, "nats-tls-cert", "", "client certificate for NATS servers that ask for one, with --nats-tls-key (env "+natsnode.EnvTLSCert+")")
	fs.StringVar(&o.TLSKey, "nats-tls-key", "", "the client certificate's key file (env "+natsnode.EnvTLSKey+")")
	return o
}

// natsJoin is how a process joins an external NATS: its flags, and where they
// are silent the config file's general_settings.nats_* (the environment fills
// what both leave unset: natsnode.CredentialsFromEnv). A flag that names who
// joins (--nats-creds, --nats-nkey) drops the file's.
func natsJoin(flags natsnode.ConnectOptions, file config.NATSJoin) natsnode.ConnectOptions {
	o := flags
	if !o.NamesWhoJoins() {
		o.CredsFile, o.NKeyFile = file.Creds, file.NKey
	}
	for _, f := range []struct {
		p *string
		v string
	}{{&o.TLSCA, file.TLSCA}, {&o.TLSCert, file.TLSCert}, {&o.TLSKey, file.TLSKey}} {
		if *f.p == "" {
			*f.p = f.v
		}
	}
	return o
}
