package auth

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHolderReload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "policy.json")
	write := func(doc string) { require.NoError(t, os.WriteFile(file, []byte(doc), 0o600)) }
	write(`{"principals":[{"name":"a","tokens":["` + hashA + `"],"allow":[]}]}`)
	h, err := NewHolder(file)
	require.NoError(t, err)
	var reloaded []*Policy
	h.OnReload(func(p *Policy) { reloaded = append(reloaded, p) })
	_, err = h.Policy().Authenticate("a", time.Now())
	require.NoError(t, err)

	write(`{"principals":[{"name":"a","allow":[]}]}`)
	require.NoError(t, h.Reload())
	_, err = h.Policy().Authenticate("a", time.Now())
	require.ErrorIs(t, err, ErrUnauthenticated, "a token removed from the file is refused")
	require.Len(t, reloaded, 1)

	write(`{"principals":[{"name":"a","allow":[],"typo":1}]}`)
	require.Error(t, h.Reload())
	require.Same(t, reloaded[0], h.Policy(), "a bad file leaves the policy in force")

	_, err = NewHolder(file)
	require.ErrorContains(t, err, `unknown field "typo"`)
}
