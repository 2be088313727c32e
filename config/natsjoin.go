package config

import "go.yaml.in/yaml/v3"

// NATSJoin is how a process joins an external NATS, from
// general_settings: a .creds file or an nkey seed file to prove who it is,
// and TLS files (a CA that verifies the servers, a client certificate and
// its key). Each is a file path, or an os.environ/ reference to one; the
// secrets stay in the files. Flags win over these, and these over the
// environment (MCPBUS_NATS_*).
type NATSJoin struct {
	Creds, NKey, TLSCA, TLSCert, TLSKey string
}

// IsZero reports whether the config sets none of it.
func (j NATSJoin) IsZero() bool { return j == NATSJoin{} }

func (j *NATSJoin) read(p *problems, path, key string, n *yaml.Node, env LookupEnv) {
	s, ok := p.str(path, n)
	if !ok {
		return
	}
	v, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return
	}
	if v == "" {
		p.errorf(path, "is empty: give a file path, or remove it")
		return
	}
	switch key {
	case "nats_creds":
		j.Creds = v
	case "nats_nkey":
		j.NKey = v
	case "nats_tls_ca":
		j.TLSCA = v
	case "nats_tls_cert":
		j.TLSCert = v
	case "nats_tls_key":
		j.TLSKey = v
	}
}
