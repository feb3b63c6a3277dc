package natsboot

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Credentials are how a process authenticates to a secured NATS server: a
// user and password, or the seed of an nkey. Zero means none.
type Credentials struct {
	User     string
	Password string
	// NKeySeedFile is a file holding the nkey's seed ("SU...").
	NKeySeedFile string
}

// Validate reports credentials that cannot work.
func (c Credentials) Validate() error {
	switch {
	case c.NKeySeedFile != "" && (c.User != "" || c.Password != ""):
		return errors.New("give a NATS user and password, or an nkey seed, not both")
	case (c.User == "") != (c.Password == ""):
		return errors.New("a NATS user needs a password, and a password a user")
	}
	return nil
}

// Options are the nats.go options that present the credentials.
func (c Credentials) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch {
	case c.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey seed %s: %w", c.NKeySeedFile, err)
		}
		return []nats.Option{opt}, nil
	case c.User != "":
		return []nats.Option{nats.UserInfo(c.User, c.Password)}, nil
	}
	return nil, nil
}
