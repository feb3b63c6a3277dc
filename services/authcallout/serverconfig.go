package authcallout

import (
	"fmt"
	"strings"
)

// ServicesUser is the user of teatree's own services in the
// configuration ServerConfig writes (teatree serve --nats-user).
const ServicesUser = "teatree"

// ServerConfig is the part of a nats-server configuration that makes the
// server ask the callout about every connection except those of the two
// users it defines (auth_users), which it authenticates itself: teatree's
// services, and the callout by an nkey. With an nkey user in its
// configuration the server sends every client a nonce, which the nkey
// principals of the policy must sign (it sends none otherwise).
type ServerConfig struct {
	// Account is the teatree account: JetStream is enabled in it, both
	// users are defined in it, and the callout places the principals in
	// it (so it is also auth_callout.account, where the requests are sent:
	// the callout reads teatree's buckets there).
	Account string
	// Issuer is the issuer's public account key; XKey, if set, the
	// public curve key requests are sealed to.
	Issuer, XKey string
	// ServicesPassword is the password of ServicesUser as nats-server
	// takes it: plain, or a bcrypt hash ("$2a$...").
	ServicesPassword string
	// CalloutNKey is the public nkey of the callout's user (teatree serve
	// auth --nats-nkey-seed).
	CalloutNKey string
}

// String is the configuration, to go beside the server's listen and
// jetstream blocks.
func (c ServerConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, `accounts {
  # teatree's streams and buckets, its services, the callout, and every
  # principal the callout lets in.
  %s {
    jetstream: enabled
    users: [
      {user: %q, password: %q}
      {nkey: %q}
    ]
  }
}
authorization {
  auth_callout {
    # The public key of teatree serve auth --issuer-seed.
    issuer: %q
    # The account the requests are sent in: the callout's user's, and
    # teatree's (the callout reads its buckets).
    account: %s
    # Users the server authenticates itself, without asking the callout.
    auth_users: [%q, %q]
`, c.Account, ServicesUser, c.ServicesPassword, c.CalloutNKey, c.Issuer, c.Account, ServicesUser, c.CalloutNKey)
	if c.XKey != "" {
		fmt.Fprintf(&b, "    # The public key of teatree serve auth --xkey-seed: requests and answers are encrypted.\n    xkey: %q\n", c.XKey)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}
