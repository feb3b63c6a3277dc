package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The files of the pair Auto makes, in its directory.
const (
	AutoCert = "cert.pem"
	AutoKey  = "key.pem"
)

// autoValidity is how long a made certificate is valid: long enough that
// a trial never sees it expire.
const autoValidity = 10 * 365 * 24 * time.Hour

// Auto returns a server configuration with the self-signed ECDSA P-256
// pair in dir (AutoCert, AutoKey), making it first if dir has none: a
// restart keeps the certificate clients already trust. It is valid for
// localhost, 127.0.0.1, ::1, this machine's host name and hosts (the
// addresses, or names, the servers listen on); a pair in dir that does not
// cover one of hosts is replaced by a new one that does.
func Auto(dir string, hosts ...string) (*tls.Config, error) {
	certFile, keyFile := filepath.Join(dir, AutoCert), filepath.Join(dir, AutoKey)
	_, err := os.Stat(certFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("TLS certificate: %w", err)
	default:
		cfg, err := Load(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%w (delete %s to make a new pair)", err, dir)
		}
		if covers(Leaf(cfg), hosts) {
			return cfg, nil
		}
	}
	if err := makePair(dir, certFile, keyFile, hosts); err != nil {
		return nil, fmt.Errorf("make a self-signed TLS certificate in %s: %w", dir, err)
	}
	return Load(certFile, keyFile)
}

func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func makePair(dir, certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	names := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if host, err := os.Hostname(); err == nil && host != "" {
		hosts = append(hosts, host)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "teatree self-signed", Organization: []string{"teatree"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(autoValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		// A CA, so that clients may trust it as their root (--ca, curl --cacert).
		IsCA:        true,
		DNSNames:    names,
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The key first: a certificate without its key would be taken for a
	// whole pair at the next start.
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

// writePEM writes the block to a temporary file and renames it into
// place, so that a crash leaves the file whole or absent.
func writePEM(path, kind string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: kind, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
