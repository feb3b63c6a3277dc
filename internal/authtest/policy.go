// Package authtest is the access policy of teatree's security tests and
// the NATS permission matrix run against any server that enforces it:
// the embedded server of `up --auth`, or a nats-server with teatree's
// auth callout.
package authtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
)

// The principals of the policy. Each has a NATS user of its own name,
// with Password(name), and grants on "sales*" (the worker: work of
// capability "go" on every model); Root has only an HTTP token, with
// admin of every model, for setting up.
const (
	Admin  = "admin"
	Writer = "writer"
	Reader = "reader"
	Worker = "worker"
	Root   = "root"
)

// Glob is the models the principals other than Root have roles on.
const Glob = "sales*"

// WorkCapability is what the worker may serve.
const WorkCapability = "go"

// RootToken is Root's bearer token.
const RootToken = "tt_authtest-root-token"

// Password is the NATS password of a principal.
func Password(principal string) string { return principal + "-nats-secret" }

// WritePolicy writes the policy into a file of t.TempDir() and returns
// its path.
func WritePolicy(t testing.TB) string {
	t.Helper()
	roles := map[string]string{
		Admin:  "[admin, write, read]",
		Writer: "[write, read]",
		Reader: "[read]",
	}
	doc := fmt.Sprintf("principals:\n- name: %s\n  tokens: [%q]\n  allow:\n  - {models: [\"*\"], roles: [admin, write, read]}\n", Root, auth.HashToken(RootToken))
	for _, name := range []string{Admin, Writer, Reader, Worker} {
		hash, err := auth.HashPassword(Password(name))
		require.NoError(t, err)
		grant := fmt.Sprintf("{models: [%q], roles: %s}", Glob, roles[name])
		if name == Worker {
			grant = fmt.Sprintf("{models: [\"*\"], roles: [work], capabilities: [%s]}", WorkCapability)
		}
		doc += fmt.Sprintf("- name: %s\n  nats: {user: %s, password_hash: %q}\n  allow:\n  - %s\n", name, name, hash, grant)
	}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))
	_, err := auth.Load(file)
	require.NoError(t, err, "authtest policy:\n%s", doc)
	return file
}
