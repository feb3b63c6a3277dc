package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/teatree-dev/teatree/pkg/tlsconf"
)

// tlsFlags are the server's TLS flags: a certificate and key, or a
// self-signed pair made under the data directory.
type tlsFlags struct {
	cert, key, mode string
}

func (f *tlsFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.cert, "tls-cert", "", "PEM certificate (its chain may follow) of the gateway's HTTPS and, with up, the embedded NATS server's TLS; plain connections are then refused")
	fl.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&f.mode, "tls", "", "auto: make (or reuse) a self-signed certificate in DATA/tls for trying TLS out, and print its fingerprint")
}

// set says whether any TLS flag is given.
func (f *tlsFlags) set() bool { return f.mode != "" || f.cert != "" || f.key != "" }

// config is the server TLS configuration the flags ask for, nil for none;
// a made certificate covers the hosts of the addresses listened on.
func (f *tlsFlags) config(data string, listens ...string) (*tls.Config, error) {
	switch {
	case !f.set():
		return nil, nil
	case f.mode == "":
		return tlsconf.Load(f.cert, f.key)
	case f.mode != "auto":
		return nil, fmt.Errorf("--tls %q: want auto, or give --tls-cert and --tls-key", f.mode)
	case f.cert != "" || f.key != "":
		return nil, fmt.Errorf("--tls auto makes its own certificate: give it, or --tls-cert and --tls-key, not both")
	}
	cfg, err := tlsconf.Auto(autoDir(data), listenHosts(listens)...)
	if err != nil {
		return nil, fmt.Errorf("--tls auto: %w", err)
	}
	return cfg, nil
}

func autoDir(data string) string { return filepath.Join(data, "tls") }

// listenHosts are the hosts of the addresses (host:port) that name one:
// not every interface (no host, 0.0.0.0, ::), which clients reach by the
// loopback addresses and host name every made certificate has.
func listenHosts(addrs []string) []string {
	var hosts []string
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			continue
		}
		hosts = append(hosts, host)
	}
	return hosts
}

// certFile is the file of the certificate config presents, for clients
// to trust.
func (f *tlsFlags) certFile(data string) string {
	if f.mode == "auto" {
		return filepath.Join(autoDir(data), tlsconf.AutoCert)
	}
	return f.cert
}

// trustNotice says, at start, which certificate the servers present and,
// for a self-signed one, how clients trust it (a certificate of a CA they
// know needs nothing).
func (f *tlsFlags) trustNotice(cfg *tls.Config, data, httpURL string) string {
	file := f.certFile(data)
	if f.mode != "auto" {
		return fmt.Sprintf("  TLS:   %s (clients that do not trust its CA: --ca FILE)\n", file)
	}
	return fmt.Sprintf(`  TLS:   self-signed (--tls auto), %[1]s
         SHA-256 fingerprint %[2]s
         trust it: export TEATREE_URL=%[3]s TEATREE_CA=%[1]s (or teatree --ca %[1]s);
         curl --cacert %[1]s; NATS clients: the CA file %[1]s
`, file, tlsconf.Fingerprint(tlsconf.Leaf(cfg)), httpURL)
}
