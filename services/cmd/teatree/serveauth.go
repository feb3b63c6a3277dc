package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/authcallout"
)

func serveAuthCmd() *cobra.Command {
	var natsURL, policy, issuerSeed, xkeySeed, prefix, logLevel string
	var creds natsboot.Credentials
	var cfg authcallout.Config
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Run the NATS auth callout of an --auth policy, for an external NATS server or cluster",
		Long: `Run a NATS auth callout service: nats-server asks it about every new
connection, and it answers with the permissions the access policy (--auth,
the same file as teatree serve --auth) gives the connection's principal,
the same as teatree up --auth's embedded server gives its users. A NATS
user and password, or an nkey, of the policy is let in, into --account,
with its principal's subject permissions; anything else is refused and
the server logs why.

teatree auth issuer makes the issuer's seed and prints the nats-server
configuration to paste (accounts, auth_callout, auth_users); see "An
external NATS cluster" in docs/security.md. The callout connects as one of
auth_users, in the teatree account (it reads tt_models and tt_functions).
Run as many as you like: each request is answered by one.

A principal's permissions name the models its globs match when it
connects: a model created later is covered once the connection reconnects
(--user-ttl makes it do so). SIGHUP reloads the policy for new
connections.`,
		Example: `  teatree serve auth --nats nats://10.0.0.1:4222 --nats-nkey-seed callout.nk --auth policy.yaml --issuer-seed issuer.nk --xkey-seed xkey.nk`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Names, err = subject.New(prefix); err != nil {
				return err
			}
			if policy == "" || issuerSeed == "" {
				return errors.New("--auth and --issuer-seed are needed")
			}
			holder, err := auth.NewHolder(policy)
			if err != nil {
				return fmt.Errorf("--auth: %w", err)
			}
			if cfg.Issuer, err = authcallout.LoadKey(issuerSeed); err != nil {
				return fmt.Errorf("--issuer-seed: %w", err)
			}
			if xkeySeed != "" {
				if cfg.XKey, err = authcallout.LoadKey(xkeySeed); err != nil {
					return fmt.Errorf("--xkey-seed: %w", err)
				}
			}
			if err := cfg.WithDefaults().Validate(); err != nil {
				return err
			}
			if _, err := natsboot.SeedURLs(natsURL); err != nil {
				return err
			}
			log := newLogger(logLevel).With("service", "auth")
			opts, err := creds.Options()
			if err != nil {
				return err
			}
			nc, err := nats.Connect(natsURL, append(opts, nats.Name("teatree-auth"),
				nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))...)
			if err != nil {
				return fmt.Errorf("connect to nats at %s: %w", natsURL, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			holder.ReloadOnSIGHUP(ctx, log)
			svc, err := authcallout.New(cfg, authcallout.Deps{NC: nc, JS: js, Policy: holder, Log: log})
			if err != nil {
				return err
			}
			return svc.Run(ctx, func() {
				fmt.Fprintf(cmd.OutOrStdout(), "teatree serving [auth] against %s: users go to account %s\n", natsURL, cfg.WithDefaults().Account)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&natsURL, "nats", "nats://127.0.0.1:4222", "URL of the NATS server, or a comma-separated list of seed URLs of a cluster")
	natsCredentialFlags(fl, &creds)
	fl.StringVar(&policy, "auth", "", "access policy file, YAML or JSON, as teatree serve --auth takes (required)")
	fl.StringVar(&issuerSeed, "issuer-seed", "", "file of the account nkey seed (SA...) whose public key is auth_callout.issuer; it signs the user JWTs (teatree auth issuer makes one) (required)")
	fl.StringVar(&cfg.Account, "account", authcallout.DefaultAccount, "the account the users are placed in: the one of teatree's streams and buckets (in the server's configuration, auth_callout.account names the account of the callout's own user, the same one)")
	fl.StringVar(&xkeySeed, "xkey-seed", "", "file of the curve key seed (SX...) whose public key is auth_callout.xkey, to encrypt requests and answers (teatree auth issuer --xkey-out makes one)")
	fl.DurationVar(&cfg.UserTTL, "user-ttl", 0, "how long a connection's permissions hold before the server closes it and the client reconnects with those then in force (0: for the life of the connection)")
	fl.StringVar(&prefix, "prefix", subject.DefaultPrefix, "subject prefix of every teatree subject")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
