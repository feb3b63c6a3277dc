package tlsconf_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/tlsconf"
)

func TestAutoMakesAPairAndKeepsIt(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	cfg, err := tlsconf.Auto(dir)
	require.NoError(t, err)
	leaf := tlsconf.Leaf(cfg)
	require.Contains(t, leaf.DNSNames, "localhost")
	host, err := os.Hostname()
	require.NoError(t, err)
	require.NoError(t, leaf.VerifyHostname(host))
	for _, ip := range []string{"127.0.0.1", "::1"} {
		require.NoError(t, leaf.VerifyHostname(ip), ip)
	}
	st, err := os.Stat(filepath.Join(dir, tlsconf.AutoKey))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the key is for its owner only")

	again, err := tlsconf.Auto(dir, "127.0.0.1")
	require.NoError(t, err)
	require.Equal(t, leaf.Raw, tlsconf.Leaf(again).Raw, "a restart keeps the certificate clients trust")

	// Listening on another address needs a certificate for it too.
	moved, err := tlsconf.Auto(dir, "127.1.2.3", "teatree.example")
	require.NoError(t, err)
	require.NotEqual(t, leaf.Raw, tlsconf.Leaf(moved).Raw)
	for _, h := range []string{"127.1.2.3", "teatree.example", "localhost", "127.0.0.1"} {
		require.NoError(t, tlsconf.Leaf(moved).VerifyHostname(h), h)
	}
}

func TestFingerprintIsOpenSSLs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := tlsconf.Auto(dir)
	require.NoError(t, err)
	fp := tlsconf.Fingerprint(tlsconf.Leaf(cfg))
	require.Regexp(t, regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`), fp)
	out, err := exec.Command("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", filepath.Join(dir, tlsconf.AutoCert)).Output()
	require.NoError(t, err, "openssl is needed to check the fingerprint's format")
	// openssl prints "sha256 Fingerprint=AA:BB:..." (the label's case varies).
	_, got, ok := strings.Cut(strings.TrimSpace(string(out)), "=")
	require.True(t, ok, "openssl printed %q", out)
	require.Equal(t, got, fp)
}

func TestLoadErrorsSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := tlsconf.Load(filepath.Join(dir, "cert.pem"), "")
	require.ErrorContains(t, err, "give both --tls-cert and --tls-key")
	_, err = tlsconf.Load(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	require.ErrorContains(t, err, "load TLS certificate")

	// A key that is not the certificate's.
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_, err = tlsconf.Auto(a)
	require.NoError(t, err)
	_, err = tlsconf.Auto(b)
	require.NoError(t, err)
	_, err = tlsconf.Load(filepath.Join(a, tlsconf.AutoCert), filepath.Join(b, tlsconf.AutoKey))
	require.ErrorContains(t, err, "the key must be the certificate's")

	_, err = tlsconf.ClientConfig(filepath.Join(dir, "missing.pem"))
	require.ErrorContains(t, err, "read CA file")
	bad := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(bad, []byte("not pem"), 0o600))
	_, err = tlsconf.ClientConfig(bad)
	require.ErrorContains(t, err, "holds no PEM certificate")
}

// serve runs an HTTPS server with cfg on 127.0.0.1.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(url string, cfg *tls.Config) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func TestClientConfigTrustsTheCAFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg, err := tlsconf.Auto(dir)
	require.NoError(t, err)
	url := serve(t, cfg)

	trusting, err := tlsconf.ClientConfig(filepath.Join(dir, tlsconf.AutoCert))
	require.NoError(t, err)
	require.NoError(t, get(url, trusting))

	system, err := tlsconf.ClientConfig("")
	require.NoError(t, err)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, get(url, system), &unknown, "the system's roots do not know a self-signed certificate")
}

func TestPinnedTrustsOnlyThatCertificate(t *testing.T) {
	t.Parallel()
	cfg, err := tlsconf.Auto(t.TempDir())
	require.NoError(t, err)
	other, err := tlsconf.Auto(t.TempDir())
	require.NoError(t, err)
	url := serve(t, cfg)
	// As if dialled by a name the certificate does not cover: the pin holds anyway.
	pinned := tlsconf.Pinned(cfg)
	pinned.ServerName = "elsewhere.example"
	require.NoError(t, get(url, pinned))
	require.ErrorContains(t, get(url, tlsconf.Pinned(other)), "another certificate")
}
