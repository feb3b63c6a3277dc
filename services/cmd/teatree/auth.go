package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/auth"
)

func authCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Make credentials for an --auth policy file",
		Long: `Make the credentials of a principal in the policy file of teatree up --auth
and teatree serve --auth (see docs/security.md). The file keeps only hashes:
the secret is printed once, here, for you to hand to the principal.`,
	}
	cmd.AddCommand(authTokenCmd(), authPasswordCmd(), authIssuerCmd())
	return cmd
}

func authTokenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print a new HTTP bearer token and its policy line",
		Long: `Print a new random bearer token, once, and the line that gives it to a
principal in the policy file:

  principals:
    - name: analyst
      tokens: ["sha256:..."]
      allow: [{models: ["sales*"], roles: [read]}]

A token may expire: tokens: [{hash: "sha256:...", expires: "2027-01-01T00:00:00Z"}].
To revoke it, remove its hash from the file and send the server SIGHUP.
Clients send it as Authorization: Bearer <token>; teatree commands take
--token or TEATREE_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, hash, err := auth.NewToken()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "token (shown once; give it to the principal): %s\nadd to the principal in the policy file:\n  tokens: [%q]\n", token, hash)
			return err
		},
	}
}

func authPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "password",
		Short: "Print a new NATS password and its policy line",
		Long: `Print a new random NATS password, once, and the bcrypt hash that gives it
to a principal in the policy file:

  principals:
    - name: loader
      nats: {user: loader, password_hash: "bcrypt:..."}
      allow: [{models: ["sales"], roles: [write]}]

The principal connects to NATS as that user with that password.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			password, err := newPassword()
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(password)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "password (shown once; give it to the principal): %s\nadd to the principal in the policy file:\n  nats: {user: NAME, password_hash: %q}\n", password, hash)
			return err
		},
	}
}
