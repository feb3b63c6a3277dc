package e2e

import (
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
)

// TestUpWithTLSAuto runs `teatree up --tls auto` and uses it as its start
// banner says: the client commands with --ca (and TEATREE_CA), and a
// worker on its NATS server with --nats-ca.
func TestUpWithTLSAuto(t *testing.T) {
	t.Parallel()
	ip := loopback.IP(t)
	data := t.TempDir()
	httpAddr, natsAddr := net.JoinHostPort(ip, portHTTP), net.JoinHostPort(ip, portNATS)
	up := newProc(t, "teatree up", binary, []string{"up", "--data", data, "--http", httpAddr, "--nats", natsAddr, "--tls", "auto"},
		readyTeatree("teatree is up.", ""))
	up.start()

	certFile := filepath.Join(data, "tls", "cert.pem")
	banner := up.logs.String()
	require.Contains(t, banner, "https://"+httpAddr)
	require.Contains(t, banner, "tls://"+natsAddr)
	require.Contains(t, banner, "SHA-256 fingerprint "+fingerprint(t, certFile))
	require.Contains(t, banner, "--ca "+certFile)
	require.Contains(t, banner, "open to anyone on this machine")

	cli := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	url := "https://" + httpAddr
	out, err := cli(nil, "model", "create", "sales", "--server", url, "--ca", certFile)
	require.NoError(t, err, out)
	trusting := []string{"TEATREE_URL=" + url, "TEATREE_CA=" + certFile}
	out, err = cli(trusting, "sql", "sales", "create table t as select 42 as x", "--wait")
	require.NoError(t, err, out)
	out, err = cli(trusting, "model", "list")
	require.NoError(t, err, out)
	require.Contains(t, out, "sales")

	out, err = cli(nil, "model", "list", "--server", url)
	require.Error(t, err, out)
	require.Contains(t, out, "certificate signed by unknown authority")
	out, err = cli(nil, "model", "list", "--server", "http://"+httpAddr)
	require.Error(t, err, out)

	worker := newProc(t, "teatree serve worker", binary,
		[]string{"serve", "worker", "--nats", "tls://" + natsAddr, "--nats-ca", certFile, "--id", "w-tls"},
		readyTeatree("teatree serving [worker] w-tls", ""))
	worker.start()
}

// fingerprint is the SHA-256 of the certificate's DER, as openssl prints it.
func fingerprint(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	require.NoError(t, err)
	block, _ := pem.Decode(b)
	require.NotNil(t, block, "%s holds no PEM block", certFile)
	sum := sha256.Sum256(block.Bytes)
	hex := make([]string, len(sum))
	for i, c := range sum {
		hex[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(hex, ":")
}

// TestUpRefusesToBeOpenBeyondLoopback: without --auth, an address other
// machines reach needs --insecure, and the refusal says what to do.
func TestUpRefusesToBeOpenBeyondLoopback(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"up", "--data", t.TempDir(), "--http", "0.0.0.0:0", "--nats", "127.0.0.1:0"},
		{"up", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--nats", ":0"},
		{"serve", "gateway", "--data", t.TempDir(), "--http", "0.0.0.0:0", "--nats", "nats://127.0.0.1:1"},
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		require.Error(t, err, "%v: %s", args, out)
		require.Contains(t, string(out), "give --auth FILE", "%v", args)
		require.Contains(t, string(out), "--insecure", "%v", args)
	}
}
