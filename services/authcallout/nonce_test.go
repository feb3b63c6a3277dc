package authcallout

import (
	"encoding/base64"
	"testing"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// An nkey is taken only with its signature of the nonce the server sent.
func TestVerifyNonce(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	other, err := nkeys.CreateUser()
	require.NoError(t, err)
	account, err := nkeys.CreateAccount()
	require.NoError(t, err)
	accountPub, err := account.PublicKey()
	require.NoError(t, err)
	sign := func(kp nkeys.KeyPair, nonce string) string {
		sig, err := kp.Sign([]byte(nonce))
		require.NoError(t, err)
		return base64.RawURLEncoding.EncodeToString(sig)
	}
	const nonce = "server-nonce"
	require.NoError(t, verifyNonce(pub, sign(kp, nonce), nonce))
	stdSig, err := kp.Sign([]byte(nonce))
	require.NoError(t, err)
	require.NoError(t, verifyNonce(pub, base64.StdEncoding.EncodeToString(stdSig), nonce), "standard base64")

	for name, c := range map[string]struct{ nkey, sig, nonce, want string }{
		"another nonce":      {pub, sign(kp, "other nonce"), nonce, "does not verify"},
		"another key's":      {pub, sign(other, nonce), nonce, "does not verify"},
		"no signature":       {pub, "", nonce, "no signature"},
		"no nonce":           {pub, sign(kp, nonce), "", "no signature"},
		"not base64":         {pub, "!!!", nonce, "not base64"},
		"not a user's nkey":  {accountPub, sign(account, nonce), nonce, "not a user's public nkey"},
		"not an nkey at all": {"UNOTAKEY", sign(kp, nonce), nonce, "not a user's public nkey"},
	} {
		require.ErrorContains(t, verifyNonce(c.nkey, c.sig, c.nonce), c.want, name)
	}
}
