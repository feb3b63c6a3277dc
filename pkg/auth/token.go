package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	sha256Prefix = "sha256:"
	bcryptPrefix = "bcrypt:"
	// tokenPrefix marks teatree's bearer tokens, so that one pasted where
	// it does not belong is recognised.
	tokenPrefix = "tt_"
)

// Token is a bearer token's hash, with an optional expiry. In a policy
// file it is a string "sha256:<hex>" or {hash: "sha256:<hex>", expires:
// <RFC 3339 time>}.
type Token struct {
	Hash    string    `json:"hash"`
	Expires time.Time `json:"expires,omitzero"`
}

// UnmarshalJSON takes the string form or the object form.
func (t *Token) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = Token{Hash: s}
		return nil
	}
	type plain Token
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return errors.New(`a token is "sha256:<hex>" or {hash: "sha256:<hex>", expires: "2027-01-01T00:00:00Z"}`)
	}
	*t = Token(p)
	return nil
}

func (t Token) check() error {
	h, ok := strings.CutPrefix(t.Hash, sha256Prefix)
	if b, err := hex.DecodeString(h); !ok || err != nil || len(b) != sha256.Size {
		return errors.New(`want "sha256:" and 64 hex digits, as teatree auth token prints`)
	}
	return nil
}

type tokenEntry struct {
	principal *Principal
	expires   time.Time
}

// HashToken returns the policy form of a bearer token: "sha256:<hex>".
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return sha256Prefix + hex.EncodeToString(sum[:])
}

// NewToken returns a new random bearer token and its hash.
func NewToken() (token, hash string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("new token: %w", err)
	}
	token = tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashPassword returns the policy form of a NATS password:
// "bcrypt:<hash>".
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return bcryptPrefix + string(h), nil
}

// ErrUnauthenticated is returned for credentials the policy does not know.
var ErrUnauthenticated = errors.New("unknown credentials")

// ErrExpired is returned for a token past its expiry.
var ErrExpired = errors.New("token expired")

// Authenticate returns the principal holding a bearer token. The look-up
// is by the token's hash, so it takes the same time whatever the token.
func (p *Policy) Authenticate(token string, now time.Time) (*Principal, error) {
	e, ok := p.byHash[HashToken(token)]
	switch {
	case !ok:
		return nil, ErrUnauthenticated
	case expired(e.expires, now):
		return nil, ErrExpired
	}
	return e.principal, nil
}

// AuthenticateNATS returns the principal of a NATS user and password.
// nats-server checks the hash itself for the embedded server's users; the
// auth callout checks here.
func (p *Policy) AuthenticateNATS(user, password string) (*Principal, error) {
	pr := p.byUser[user]
	if pr == nil {
		return nil, ErrUnauthenticated
	}
	hash := strings.TrimPrefix(pr.NATS.PasswordHash, bcryptPrefix)
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return nil, ErrUnauthenticated
	}
	return pr, nil
}

// NKeyPrincipal returns the principal of a user's public nkey; the caller
// has checked the signature of the server's nonce with it.
func (p *Policy) NKeyPrincipal(nkey string) (*Principal, error) {
	if pr := p.byNKey[nkey]; pr != nil {
		return pr, nil
	}
	return nil, ErrUnauthenticated
}
