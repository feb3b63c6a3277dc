package authcallout

import (
	"bytes"
	"fmt"
	"os"

	"github.com/nats-io/nkeys"
)

// LoadKey reads an nkey seed from a file, as teatree auth issuer writes
// it: the issuer's account seed (SA...) or the xkey's curve seed (SX...).
func LoadKey(file string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("nkey seed %s: %w (want one seed, as teatree auth issuer writes)", file, err)
	}
	return kp, nil
}
