package subject_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestRequestFromMsgID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msgID, want string
		bad         bool
	}{
		{msgID: "sales.order-4", want: "order-4"},
		{msgID: "order-4", want: "order-4"}, // unprefixed: the id itself
		{msgID: "sales.1", want: "1"},
		{msgID: "stock.order-4", bad: true}, // another model's prefix
		{msgID: "sales.", bad: true},
		{msgID: "sales.a.b", bad: true},
		{msgID: "sales.seq-7", bad: true}, // reserved prefix
		{msgID: "seq-7", bad: true},
		{msgID: "sales.has space", bad: true},
		{msgID: "", bad: true},
	} {
		got, err := subject.RequestFromMsgID("sales", tc.msgID)
		if tc.bad {
			var ae *apierr.Error
			require.ErrorAs(t, err, &ae, tc.msgID)
			require.Equal(t, apierr.InvalidArgument, ae.Code, tc.msgID)
			continue
		}
		require.NoError(t, err, tc.msgID)
		require.Equal(t, tc.want, got, tc.msgID)
		require.Equal(t, "sales."+got, subject.MsgID("sales", got), "MsgID is the inverse")
	}
}

func TestSeqIDsAreReservedButNameable(t *testing.T) {
	t.Parallel()
	id := subject.SeqRequestID(42)
	require.Equal(t, "seq-42", id)
	require.Error(t, subject.ValidateRequest(id), "a client may not choose a seq- id")
	require.NoError(t, subject.ValidateRequestRef(id), "but may look one up")
	require.NoError(t, subject.ValidateRequest("sequence-1"), "only the exact prefix is reserved")
}
