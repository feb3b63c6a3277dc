package outcome_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/wire"
)

// The status bodies are the contract's, byte for byte.
func TestStatusBodies(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	b, err := wire.Marshal(outcome.Applied("sales", "r1", "append", 42, at, 1000))
	require.NoError(t, err)
	require.JSONEq(t, `{"request_id":"r1","model":"sales","op":"append","status":"applied",
		"seq":42,"rows_affected":1000,"applied_at":"2026-11-23T10:00:00Z"}`, string(b))

	b, err = wire.Marshal(outcome.Failed("sales", "r2", "sql", 43, at, apierr.New(apierr.SQLError, `Binder Error: column "x" not found`)))
	require.NoError(t, err)
	require.JSONEq(t, `{"request_id":"r2","model":"sales","op":"sql","status":"failed","seq":43,
		"applied_at":"2026-11-23T10:00:00Z","error":{"code":"sql_error","message":"Binder Error: column \"x\" not found"}}`, string(b))

	// An error without a contract code is the node's: internal.
	s := outcome.Failed("sales", "r3", "sql", 44, at, errors.New("disk full"))
	require.Equal(t, string(apierr.Internal), s.GetError().GetCode())
}
