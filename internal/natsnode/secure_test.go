package natsnode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// pki is a test CA and what it signed, as PEM files in dir.
type pki struct {
	dir                   string
	ca                    *x509.Certificate
	caKey                 *ecdsa.PrivateKey
	caFile                string
	serverCert            tls.Certificate
	clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcpbus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	sDER, sKey := p.sign(t, 2, x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{sDER}, PrivateKey: sKey}
	cDER, cKey := p.sign(t, 3, x509.ExtKeyUsageClientAuth)
	p.clientCert = p.write(t, "client.pem", "CERTIFICATE", cDER)
	kDER, _ := x509.MarshalECPrivateKey(cKey)
	p.clientKey = p.write(t, "client-key.pem", "EC PRIVATE KEY", kDER)
	return p
}

func (p *pki) sign(t *testing.T, serial int64, usage ...x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: usage,
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secureServer is a NATS server that speaks only TLS, asks for a client
// certificate the test CA signed, and admits one nkey user.
func secureServer(t *testing.T, p *pki) (url, seedFile string) {
	t.Helper()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile = filepath.Join(p.dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.serverCert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns.ClientURL(), seedFile
}

// A process joins a cluster that speaks TLS, verifies clients and admits
// nkey users: with the CA, its client certificate and its seed it gets in;
// without any one of them it is refused, and the error names what is wrong.
func TestConnectWithTLSAndNKey(t *testing.T) {
	p := newPKI(t)
	url, seed := secureServer(t, p)
	good := ConnectOptions{Name: "secure", NKeyFile: seed, TLSCA: p.caFile, TLSCert: p.clientCert, TLSKey: p.clientKey}
	nc, err := Connect(url, good)
	if err != nil {
		t.Fatalf("with the CA, a client certificate and the seed: %v", err)
	}
	if err := nc.Flush(); err != nil || !nc.TLSRequired() {
		t.Fatalf("flush %v, tls %v", err, nc.TLSRequired())
	}
	nc.Close()

	for name, c := range map[string]struct {
		mod  func(*ConnectOptions)
		want string
	}{
		"no CA":                  {func(o *ConnectOptions) { o.TLSCA = "" }, "certificate"},
		"no client certificate":  {func(o *ConnectOptions) { o.TLSCert, o.TLSKey = "", "" }, ""},
		"a certificate, no key":  {func(o *ConnectOptions) { o.TLSKey = "" }, "--nats-tls-key"},
		"no seed":                {func(o *ConnectOptions) { o.NKeyFile = "" }, "Authorization"},
		"a seed and a user":      {func(o *ConnectOptions) { o.User, o.Password = "u", "p" }, "one way"},
		"a seed that is not one": {func(o *ConnectOptions) { o.NKeyFile = p.caFile }, "--nats-nkey"},
	} {
		o := good
		c.mod(&o)
		nc, err := Connect(url, o)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, c.want)
		}
	}
}

// A flag naming who joins wins over the environment; TLS files come from
// the environment when no flag gives them.
func TestCredentialsFromEnvPrecedence(t *testing.T) {
	env := map[string]string{EnvUser: "env-user", EnvPassword: "pw", EnvNKey: "/env/seed", EnvTLSCA: "/env/ca.pem"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o := CredentialsFromEnv(ConnectOptions{NKeyFile: "/flag/seed"}, lookup)
	if o.NKeyFile != "/flag/seed" || o.User != "" || o.TLSCA != "/env/ca.pem" {
		t.Errorf("flag seed: %+v", o)
	}
	o = CredentialsFromEnv(ConnectOptions{}, lookup)
	if o.User != "env-user" || o.NKeyFile != "/env/seed" {
		t.Errorf("from the environment: %+v", o)
	}
	o = CredentialsFromEnv(ConnectOptions{TLSCA: "/flag/ca.pem"}, lookup)
	if o.TLSCA != "/flag/ca.pem" {
		t.Errorf("flag CA: %+v", o)
	}
}
