package main

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// natsPasswordEnv keeps the NATS password off the command line.
const natsPasswordEnv = "TEATREE_NATS_PASSWORD"

// natsCredentialFlags registers the flags of the credentials a process
// presents to a secured NATS server, and of the CA it checks the server's
// TLS certificate with.
func natsCredentialFlags(fl *pflag.FlagSet, c *natsboot.Credentials) {
	fl.StringVar(&c.User, "nats-user", "", "NATS user, where the NATS server requires one")
	fl.StringVar(&c.Password, "nats-password", os.Getenv(natsPasswordEnv), "password of --nats-user (or set "+natsPasswordEnv+")")
	fl.StringVar(&c.NKeySeedFile, "nats-nkey-seed", "", "file of the nkey seed (SU...) to authenticate with instead of a user and password")
	fl.StringVar(&c.CAFile, "nats-ca", "", "PEM file of the CA, or the self-signed certificate, of a NATS server's TLS certificate; connects with TLS (a tls:// URL does too, trusting the system's CAs)")
}
