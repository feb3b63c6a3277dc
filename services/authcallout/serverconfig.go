package authcallout

import (
	"fmt"
	"strings"
)

// The users of the nats-server configuration ServerConfig writes.
const (
	// ServicesUser is the user of teatree's own services (teatree serve
	// --nats-user).
	ServicesUser = "teatree"
	// CalloutUser is the callout's user (teatree serve auth --nats-user).
	CalloutUser = "teatree-auth"
)

// ServerConfig is the part of a nats-server configuration that makes the
// server ask the callout about every connection except those of the two
// users it defines (auth_users), which it authenticates itself.
type ServerConfig struct {
	// Account is the teatree account: JetStream is enabled in it, both
	// users are defined in it, and the callout places the principals in
	// it (so it is also auth_callout.account, where the requests are sent:
	// the callout reads teatree's buckets there).
	Account string
	// Issuer is the issuer's public account key; XKey, if set, the
	// public curve key requests are sealed to.
	Issuer, XKey string
	// ServicesPassword and CalloutPassword are as nats-server takes them:
	// plain, or a bcrypt hash ("$2a$...").
	ServicesPassword, CalloutPassword string
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
      {user: %q, password: %q}
    ]
  }
}
authorization {
  auth_callout {
    # The public key of teatree serve auth --issuer-seed.
    issuer: %q
    # The account the requests are sent in: the callout's user's.
    account: %s
    # Users the server authenticates itself, without asking the callout.
    auth_users: [%q, %q]
`, c.Account, ServicesUser, c.ServicesPassword, CalloutUser, c.CalloutPassword, c.Issuer, c.Account, ServicesUser, CalloutUser)
	if c.XKey != "" {
		fmt.Fprintf(&b, "    # The public key of teatree serve auth --xkey-seed: requests and answers are encrypted.\n    xkey: %q\n", c.XKey)
	}
	b.WriteString("  }\n}\n")
	return b.String()
}
