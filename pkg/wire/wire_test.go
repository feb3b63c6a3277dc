package wire_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestMarshalMatchesContract(t *testing.T) {
	t.Parallel()
	rows := int64(1000)
	b, err := wire.Marshal(&teatreev1.RequestStatus{
		RequestId: "r1", Model: "sales", Op: "append", Status: "applied",
		Seq: 42, RowsAffected: &rows, AppliedAt: "2026-11-23T10:00:00Z",
	})
	require.NoError(t, err)
	require.JSONEq(t, `{"request_id":"r1","model":"sales","op":"append","status":"applied",
		"seq":42,"rows_affected":1000,"applied_at":"2026-11-23T10:00:00Z"}`, string(b))

	b, err = wire.Marshal(&teatreev1.Manifest{Model: "m", Version: 7, Tables: []*teatreev1.TableManifest{
		{Name: "orders", Rows: 5, Parquet: &teatreev1.FileRef{Path: "orders.parquet", Bytes: 99}},
	}})
	require.NoError(t, err)
	require.JSONEq(t, `{"model":"m","version":7,"tables":[{"name":"orders","rows":5,
		"parquet":{"path":"orders.parquet","bytes":99}}]}`, string(b))
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	in := &teatreev1.SqlMutation{Sql: "select $1", Params: []*structpb.Value{structpb.NewNumberValue(3), structpb.NewStringValue("x")}}
	b, err := wire.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"sql":"select $1","params":[3,"x"]}`, string(b))
	var out teatreev1.SqlMutation
	require.NoError(t, wire.Unmarshal(b, &out))
	require.True(t, proto.Equal(in, &out))

	var st teatreev1.RequestStatus
	require.NoError(t, wire.Unmarshal([]byte(`{"seq":"12","unknown":1}`), &st))
	require.Equal(t, uint64(12), st.GetSeq())
	require.Error(t, wire.Unmarshal([]byte(`{"seq":"x"}`), &st))
}
