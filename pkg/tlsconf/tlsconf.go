// Package tlsconf builds the TLS configurations of teatree's servers and
// clients: a certificate and key from files, a self-signed pair for trying
// TLS out, and client configurations that trust a given certificate.
package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Load reads a PEM certificate (its chain may follow it in the file) and
// its private key, and returns a server configuration that presents them.
func Load(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("a TLS certificate needs its key, and a key its certificate: give both --tls-cert and --tls-key")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s and key %s (both PEM; the key must be the certificate's): %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, nil
}

// Leaf is the certificate a server configuration presents.
func Leaf(cfg *tls.Config) *x509.Certificate {
	return cfg.Certificates[0].Leaf
}

// Fingerprint is the SHA-256 of the certificate's DER, in upper-case hex
// pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints it.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// ClientConfig is a client configuration that trusts the certificates of
// caFile (PEM: a CA, or a self-signed server certificate), or the system's
// roots when caFile is empty.
func ClientConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Pinned is a client configuration that trusts exactly the certificate
// the server configuration presents, whatever name it was dialled by: how
// the services in the process of a server connect to it, by the address
// it listens on, which a certificate made for a public name need not cover.
func Pinned(server *tls.Config) *tls.Config {
	want := Leaf(server).Raw
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The name is not checked; the certificate is, byte for byte, below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || string(cs.PeerCertificates[0].Raw) != string(want) {
				return errors.New("the server presented another certificate than its own process's")
			}
			return nil
		},
	}
}
