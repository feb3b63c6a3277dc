package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/tlsconf"
)

func TestTLSFlags(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	for _, c := range []struct {
		name  string
		flags tlsFlags
		err   string
	}{
		{name: "none"},
		{name: "a cert without its key", flags: tlsFlags{cert: "c.pem"}, err: "give both --tls-cert and --tls-key"},
		{name: "a key without its cert", flags: tlsFlags{key: "k.pem"}, err: "give both --tls-cert and --tls-key"},
		{name: "an unknown mode", flags: tlsFlags{mode: "on"}, err: `--tls "on": want auto`},
		{name: "auto and a pair", flags: tlsFlags{mode: "auto", cert: "c.pem", key: "k.pem"}, err: "not both"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := c.flags.config(data)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Nil(t, cfg)
		})
	}
}

// --tls auto makes a certificate for the addresses listened on, in
// DATA/tls, and --tls-cert/--tls-key then load that same pair.
func TestTLSAutoCoversTheListenAddresses(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	auto := tlsFlags{mode: "auto"}
	cfg, err := auto.config(data, "127.3.4.5:8080", "0.0.0.0:4222", ":4223", "teatree.example:4222")
	require.NoError(t, err)
	leaf := tlsconf.Leaf(cfg)
	for _, h := range []string{"127.3.4.5", "teatree.example", "127.0.0.1", "localhost"} {
		require.NoError(t, leaf.VerifyHostname(h), h)
	}
	require.Equal(t, filepath.Join(data, "tls", "cert.pem"), auto.certFile(data))

	pair := tlsFlags{cert: auto.certFile(data), key: filepath.Join(data, "tls", "key.pem")}
	loaded, err := pair.config(t.TempDir())
	require.NoError(t, err)
	require.Equal(t, leaf.Raw, tlsconf.Leaf(loaded).Raw)
}
