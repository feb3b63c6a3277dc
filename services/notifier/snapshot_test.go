package notifier_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestSnapshotEventBecomesASnapshotNotification(t *testing.T) {
	t.Parallel()
	h := start(t)
	man := &teatreev1.Manifest{Model: "sales", Version: 7, AppliedSeq: 1042, LeaseEpoch: 3,
		CreatedAt: "2026-11-23T10:00:00Z",
		Duckdb:    &teatreev1.FileRef{Path: "model.duckdb", Bytes: 1310720, Sha256: "abc"},
		Tables: []*teatreev1.TableManifest{{Name: "orders", Rows: 100000,
			Parquet: &teatreev1.FileRef{Path: "orders.parquet", Bytes: 880000, Sha256: "def"}}}}
	body, err := wire.Marshal(man)
	require.NoError(t, err)
	h.publishEvent(h.names.Evt("sales", subject.EventSnapshot), body, subject.SnapshotMsgID("sales", 7))

	raw := h.notification(h.names.NtfSnapshot("sales", 7))
	require.Equal(t, "tt.ntf.sales.snap.7", raw.Subject)
	require.JSONEq(t, `{"model":"sales","version":7,"applied_seq":1042,"lease_epoch":3,
		"created_at":"2026-11-23T10:00:00Z",
		"duckdb":{"path":"model.duckdb","bytes":1310720,"sha256":"abc"},
		"tables":[{"name":"orders","rows":100000,
			"parquet":{"path":"orders.parquet","bytes":880000,"sha256":"def"}}]}`, string(raw.Data))
	require.Equal(t, "sales", raw.Header.Get(subject.HeaderModel))
	require.Equal(t, "7", raw.Header.Get(subject.HeaderVersion))
	require.Equal(t, "1042", raw.Header.Get(subject.HeaderSeq))
	require.Equal(t, "application/json", raw.Header.Get(subject.HeaderContentType))
	require.Equal(t, subject.SnapshotMsgID("sales", 7), raw.Header.Get(subject.HeaderMsgID))
	require.EqualValues(t, 1, h.count(h.names.NtfModel("sales")))
}

// A version's event delivered again after TT_NTF's duplicate window adds
// no second notification of the version: it is only written where none
// exists.
func TestSnapshotNotifiedOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	// Version 8 was notified before the window, so its message id no
	// longer protects it: here it is under another id.
	old := h.publishEvent(h.names.NtfSnapshot("sales", 8), []byte(`{"model":"sales","version":8}`), "from-long-ago")
	body, err := wire.Marshal(&teatreev1.Manifest{Model: "sales", Version: 8, AppliedSeq: 9})
	require.NoError(t, err)
	h.processed(h.publishEvent(h.names.Evt("sales", subject.EventSnapshot), body, "again"))
	require.Equal(t, old, h.notification(h.names.NtfSnapshot("sales", 8)).Sequence, "the first notification is still the only one")
	require.EqualValues(t, 1, h.count(h.names.NtfSnapshot("sales", 8)))
}
