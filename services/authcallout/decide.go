package authcallout

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/teatree-dev/teatree/pkg/auth"
)

// xkeyHeader carries the server's public xkey on a sealed request.
const xkeyHeader = "Nats-Server-Xkey"

// handle answers one request: a user JWT for credentials of the policy,
// else an error that nats-server logs as it refuses the connection.
func (s *Service) handle(msg *nats.Msg) {
	ctx := context.Background()
	log := s.deps.Log
	req, serverXKey, err := s.open(msg)
	if err != nil {
		// An empty answer refuses the connection at once.
		log.ErrorContext(ctx, "authorization request refused unread", "err", err)
		if err := msg.Respond(nil); err != nil {
			log.ErrorContext(ctx, "answer authorization request", "err", err)
		}
		return
	}
	res := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	res.Audience = req.Server.ID
	pr, err := s.authenticate(req)
	if err == nil {
		res.Jwt, err = s.userJWT(pr, req.UserNkey)
	}
	client := req.ClientInformation
	if err != nil {
		res.Error = err.Error()
		log.WarnContext(ctx, "nats connection refused", "host", client.Host, "client", client.ID, "err", err)
	} else {
		log.InfoContext(ctx, "nats connection allowed", "principal", pr.Name, "host", client.Host, "client", client.ID)
	}
	token, err := res.Encode(s.cfg.Issuer)
	if err != nil {
		log.ErrorContext(ctx, "sign authorization response", "err", err)
		return
	}
	data := []byte(token)
	if serverXKey != "" {
		if data, err = s.cfg.XKey.Seal(data, serverXKey); err != nil {
			log.ErrorContext(ctx, "seal authorization response", "err", err)
			return
		}
	}
	if err := msg.Respond(data); err != nil {
		log.ErrorContext(ctx, "answer authorization request", "err", err)
	}
}

// open decrypts the request if it is sealed, and checks that a server
// signed it and that it has not expired. It returns the server's xkey
// for sealing the answer, if the request came sealed.
func (s *Service) open(msg *nats.Msg) (*jwt.AuthorizationRequestClaims, string, error) {
	data := msg.Data
	serverXKey := msg.Header.Get(xkeyHeader)
	switch {
	case s.cfg.XKey != nil && serverXKey == "":
		return nil, "", errors.New("the request is not encrypted though the callout has an xkey: set auth_callout.xkey in the server's configuration to its public key")
	case s.cfg.XKey == nil && serverXKey != "":
		return nil, "", errors.New("the request is encrypted (the server's auth_callout.xkey is set): give the callout the seed of that xkey (--xkey-seed)")
	case s.cfg.XKey != nil:
		var err error
		if data, err = s.cfg.XKey.Open(data, serverXKey); err != nil {
			return nil, "", fmt.Errorf("decrypt the request: %w (is auth_callout.xkey the public key of --xkey-seed?)", err)
		}
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		return nil, "", fmt.Errorf("decode the request: %w", err)
	}
	// An expired request is refused too: the server no longer waits for
	// its answer.
	vr := jwt.CreateValidationResults()
	req.Validate(vr)
	if vr.IsBlocking(true) {
		return nil, "", fmt.Errorf("invalid request: %s", vr.Issues[0].Description)
	}
	if !nkeys.IsValidPublicServerKey(req.Issuer) {
		return nil, "", fmt.Errorf("the request is signed by %s, not by a server", req.Issuer)
	}
	return req, serverXKey, nil
}

// authenticate returns the principal of the request's credentials, as
// the embedded server would: a NATS user and password, or an nkey that
// signed the server's nonce.
func (s *Service) authenticate(req *jwt.AuthorizationRequestClaims) (*auth.Principal, error) {
	co := req.ConnectOptions
	pol := s.deps.Policy.Policy()
	switch {
	case co.Nkey != "":
		if err := verifyNonce(co.Nkey, co.SignedNonce, req.ClientInformation.Nonce); err != nil {
			return nil, err
		}
		pr, err := pol.NKeyPrincipal(co.Nkey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", co.Nkey, err)
		}
		return pr, nil
	case co.Username != "":
		pr, err := pol.AuthenticateNATS(co.Username, co.Password)
		if err != nil {
			return nil, fmt.Errorf("nats user %q: %w (or a wrong password)", co.Username, err)
		}
		return pr, nil
	}
	return nil, errors.New("no credentials: connect with a NATS user and password, or an nkey, of the policy")
}

// verifyNonce checks that the client holds the nkey's private key: it
// signed the nonce the server sent it.
func verifyNonce(nkey, sig, nonce string) error {
	if !nkeys.IsValidPublicUserKey(nkey) {
		return fmt.Errorf("nkey %s is not a user's public nkey (U...)", nkey)
	}
	if sig == "" || nonce == "" {
		return fmt.Errorf("nkey %s: no signature of the server's nonce", nkey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		// Older clients sent standard base64.
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return fmt.Errorf("nkey %s: the signature of the server's nonce is not base64", nkey)
		}
	}
	pub, err := nkeys.FromPublicKey(nkey)
	if err != nil {
		return fmt.Errorf("nkey %s: %w", nkey, err)
	}
	if err := pub.Verify([]byte(nonce), raw); err != nil {
		return fmt.Errorf("nkey %s: the signature of the server's nonce does not verify", nkey)
	}
	return nil
}

// userJWT is the user the server makes of the connection: the
// principal's name, in the teatree account, with its permissions over
// the catalog in force. NATSPermissions always allows some subjects to
// publish and to subscribe, so neither allow-list is empty (which would
// allow everything).
func (s *Service) userJWT(pr *auth.Principal, userNkey string) (string, error) {
	perms := pr.NATSPermissions(s.cfg.Names, *s.catalog.Load())
	uc := jwt.NewUserClaims(userNkey)
	uc.Name = pr.Name
	uc.Audience = s.cfg.Account
	uc.Pub.Allow.Add(perms.Publish...)
	uc.Sub.Allow.Add(perms.Subscribe...)
	if s.cfg.UserTTL > 0 {
		uc.Expires = time.Now().Add(s.cfg.UserTTL).Unix()
	}
	token, err := uc.Encode(s.cfg.Issuer)
	if err != nil {
		return "", fmt.Errorf("sign the user JWT of %s: %w", pr.Name, err)
	}
	return token, nil
}
