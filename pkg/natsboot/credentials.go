package natsboot

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/tlsconf"
)

// Credentials are how a process authenticates to a secured NATS server: a
// user and password, or the seed of an nkey; and how it checks the
// server's TLS certificate. Zero means none, over plain TCP (a tls:// URL
// still asks for TLS, checked against the system's roots).
type Credentials struct {
	User     string
	Password string
	// NKeySeedFile is a file holding the nkey's seed ("SU...").
	NKeySeedFile string
	// CAFile is a PEM file of the CA, or the self-signed certificate, the
	// server's certificate is checked against; it makes the connection TLS.
	CAFile string
	// TLS, when set instead of CAFile, is the client TLS configuration
	// itself (the services in the process of a TLS embedded server).
	TLS *tls.Config
}

// Validate reports credentials that cannot work.
func (c Credentials) Validate() error {
	switch {
	case c.NKeySeedFile != "" && (c.User != "" || c.Password != ""):
		return errors.New("give a NATS user and password, or an nkey seed, not both")
	case (c.User == "") != (c.Password == ""):
		return errors.New("a NATS user needs a password, and a password a user")
	case c.CAFile != "" && c.TLS != nil:
		return errors.New("give a NATS CA file or a TLS configuration, not both")
	}
	return nil
}

// Options are the nats.go options that present the credentials and check
// the server's certificate.
func (c Credentials) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	tc := c.TLS
	if c.CAFile != "" {
		var err error
		if tc, err = tlsconf.ClientConfig(c.CAFile); err != nil {
			return nil, fmt.Errorf("nats CA: %w", err)
		}
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}
