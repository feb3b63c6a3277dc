package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/services/authcallout"
)

func authIssuerCmd() *cobra.Command {
	var out, calloutOut, xkeyOut, account string
	cmd := &cobra.Command{
		Use:   "issuer",
		Short: "Make the keys of teatree serve auth and print the nats-server configuration",
		Long: `Make a new account nkey, the issuer that signs the user JWTs of teatree
serve auth, and the user nkey the callout connects with, and print the
nats-server configuration that runs the callout: the teatree account with
JetStream, the users of teatree's services (a password made here, printed
once; the configuration keeps its bcrypt hash) and of the callout, and
auth_callout. Paste it beside the server's listen and jetstream blocks.

--out and --callout-out write the seeds to files readable only by you
(else they are printed); --xkey-out makes a curve key as well, that
encrypts the requests and answers (auth_callout.xkey).`,
		Example: `  teatree auth issuer --out issuer.nk --callout-out callout.nk --xkey-out xkey.nk`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Every file is checked first, so that a run that fails
			// leaves no seed of a half-made set.
			for _, file := range []string{out, calloutOut, xkeyOut} {
				if _, err := os.Stat(file); file != "" && err == nil {
					return fmt.Errorf("%s exists: remove it or name another file (a seed in use is never overwritten)", file)
				}
			}
			w := cmd.OutOrStdout()
			issuer, err := newKey(w, "issuer", out, nkeys.CreateAccount)
			if err != nil {
				return err
			}
			cfg := authcallout.ServerConfig{Account: account, Issuer: issuer}
			if cfg.CalloutNKey, err = newKey(w, "callout user", calloutOut, nkeys.CreateUser); err != nil {
				return err
			}
			if xkeyOut != "" {
				if cfg.XKey, err = newKey(w, "xkey", xkeyOut, nkeys.CreateCurveKeys); err != nil {
					return err
				}
			}
			var password string
			if password, cfg.ServicesPassword, err = newServerPassword(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, `teatree's services connect as user %[1]s (teatree serve --nats-user %[1]s), password (shown once): %[2]s
the callout connects with teatree serve auth --nats-nkey-seed FILE-OF-THE-CALLOUT-USER-SEED
nats-server configuration:
%[3]s`, authcallout.ServicesUser, password, cfg)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&out, "out", "", "file to write the issuer's seed to, mode 0600 (default: print it)")
	fl.StringVar(&calloutOut, "callout-out", "", "file to write the seed of the callout's user nkey to, mode 0600 (default: print it)")
	fl.StringVar(&xkeyOut, "xkey-out", "", "also make an xkey, and write its seed to this file, mode 0600")
	fl.StringVar(&account, "account", authcallout.DefaultAccount, "name of the teatree account (teatree serve auth --account)")
	return cmd
}

// newKey makes a key, writes its seed to file (or w) and its public key
// to w, and returns the public key.
func newKey(w io.Writer, what, file string, create func() (nkeys.KeyPair, error)) (string, error) {
	kp, err := create()
	if err != nil {
		return "", fmt.Errorf("new %s: %w", what, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	if file == "" {
		_, err = fmt.Fprintf(w, "%[1]s seed (keep it secret): %[2]s\n%[1]s public key: %[3]s\n", what, seed, pub)
		return pub, err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write %s seed: %w", what, err)
	}
	_, err = fmt.Fprintf(f, "%s\n", seed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write %s seed: %w", what, err)
	}
	_, err = fmt.Fprintf(w, "%[1]s seed written to %[2]s\n%[1]s public key: %[3]s\n", what, file, pub)
	return pub, err
}

// newPassword makes a random password.
func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newServerPassword makes a password for a user of the server's
// configuration, and its bcrypt hash, which nats-server takes in its
// place.
func newServerPassword() (password, hash string, err error) {
	if password, err = newPassword(); err != nil {
		return "", "", err
	}
	if hash, err = auth.HashPassword(password); err != nil {
		return "", "", err
	}
	return password, strings.TrimPrefix(hash, "bcrypt:"), nil
}
