package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/services/authcallout"
)

// auth issuer writes seeds only the user may read, of the kinds serve auth
// takes, and prints their public keys in the server's configuration.
func TestAuthIssuerWritesTheKeysAndTheConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{"--out": "issuer.nk", "--callout-out": "callout.nk", "--xkey-out": "xkey.nk"}
	var args []string
	for flag, name := range files {
		files[flag] = filepath.Join(dir, name)
		args = append(args, flag, files[flag])
	}
	var out bytes.Buffer
	cmd := authIssuerCmd()
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	require.NoError(t, cmd.Execute())

	for flag, want := range map[string]func(string) bool{
		"--out":         nkeys.IsValidPublicAccountKey,
		"--callout-out": nkeys.IsValidPublicUserKey,
		"--xkey-out":    nkeys.IsValidPublicCurveKey,
	} {
		info, err := os.Stat(files[flag])
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), flag)
		kp, err := authcallout.LoadKey(files[flag])
		require.NoError(t, err, flag)
		pub, err := kp.PublicKey()
		require.NoError(t, err)
		require.True(t, want(pub), "%s: %s", flag, pub)
		require.Contains(t, out.String(), `"`+pub+`"`, "%s in the configuration", flag)
	}
	require.Contains(t, out.String(), "auth_callout {")
	// A second run writes nothing, even where no seed exists yet.
	require.NoError(t, os.Remove(files["--xkey-out"]))
	cmd = authIssuerCmd()
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	require.ErrorContains(t, cmd.Execute(), "exists")
	_, err := os.Stat(files["--xkey-out"])
	require.ErrorIs(t, err, os.ErrNotExist)
}
