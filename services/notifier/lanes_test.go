package notifier_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/notifier"
)

func applied(model, id string, seq uint64) *teatreev1.RequestStatus {
	return &teatreev1.RequestStatus{RequestId: id, Model: model, Op: subject.OpSQL, Status: subject.StatusApplied, Seq: seq}
}

// A status whose notification can never be published (its JSON is larger
// than the server's max payload) sends its event to TT_DEAD after
// MaxAttempts; the model's later events and other models' are notified.
func TestPoisonEventGoesToDeadLettersAndTheRestFlows(t *testing.T) {
	t.Parallel()
	h := startConfig(t, notifier.Config{MaxAttempts: 3, RetryBackoff: 10 * time.Millisecond})
	// Control characters take six bytes each in JSON.
	huge := strings.Repeat("\x01", natsboot.DefaultMaxPayload/4)
	poison := &teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{{
		RequestId: "r1", Model: "sales", Op: subject.OpSQL, Status: subject.StatusFailed, Seq: 1,
		Error: &teatreev1.Error{Code: "sql_error", Message: huge},
	}}}
	poisonSeq := h.publishOutcomes(poison, "poison")
	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{applied("sales", "r2", 2)}}, "next")
	last := h.publishOutcomes(&teatreev1.Outcomes{Model: "stock", Statuses: []*teatreev1.RequestStatus{applied("stock", "s1", 1)}}, "other")

	h.processed(last)
	h.notification(h.names.NtfRequest("sales", "r2"))
	h.notification(h.names.NtfRequest("stock", "s1"))
	require.EqualValues(t, 1, h.count(h.names.NtfModel("sales")), "the poison status is not notified")

	raw, err := h.dead.GetLastMsgForSubject(context.Background(), h.names.Dead("sales"))
	require.NoError(t, err)
	var dl teatreev1.DeadLetter
	require.NoError(t, proto.Unmarshal(raw.Data, &dl))
	require.Equal(t, h.names.Evt("sales", subject.EventOutcomes), dl.GetSubject())
	require.Equal(t, poisonSeq, dl.GetStreamSeq())
	require.EqualValues(t, 3, dl.GetAttempts())
	require.Equal(t, "poison", dl.GetHeaders()[subject.HeaderMsgID])
	require.Contains(t, dl.GetError(), "maximum payload")
	require.NotEmpty(t, dl.GetAt())
	var back teatreev1.Outcomes
	require.NoError(t, proto.Unmarshal(dl.GetData(), &back))
	require.True(t, proto.Equal(poison, &back), "the letter holds the event")
}

// Interleaved events of many models are all notified, each model's in the
// order of its events.
func TestManyModelsKeepTheirOrder(t *testing.T) {
	t.Parallel()
	h := startConfig(t, notifier.Config{Lanes: 8, MaxAckPending: 64})
	const models, events = 20, 10
	var last uint64
	for seq := uint64(1); seq <= events; seq++ {
		for m := range models {
			model := fmt.Sprintf("m%02d", m)
			last = h.publishOutcomes(&teatreev1.Outcomes{Model: model, Statuses: []*teatreev1.RequestStatus{
				applied(model, fmt.Sprintf("r%d", seq), seq)}}, subject.OutcomesMsgID(model, seq, 0))
		}
	}
	h.processed(last)
	require.Eventually(t, func() bool { return h.count(h.names.NtfAll()) == models*events }, 15*time.Second, 20*time.Millisecond)

	ctx := context.Background()
	info, err := h.ntf.Info(ctx)
	require.NoError(t, err)
	seen := map[string]uint64{}
	for s := info.State.FirstSeq; s <= info.State.LastSeq; s++ {
		raw, err := h.ntf.GetMsg(ctx, s)
		require.NoError(t, err)
		model := raw.Header.Get(subject.HeaderModel)
		seq, err := strconv.ParseUint(raw.Header.Get(subject.HeaderSeq), 10, 64)
		require.NoError(t, err)
		require.Equal(t, seen[model]+1, seq, "model %s: notification of seq %d after %d", model, seq, seen[model])
		seen[model] = seq
	}
	require.Len(t, seen, models)
}

// An event delivered again after TT_NTF's duplicate window adds no
// notification: a status notification is only written where none exists.
func TestRedeliveryAfterTheDuplicateWindowAddsNothing(t *testing.T) {
	t.Parallel()
	h := start(t)
	// r1 was notified before the window, so its message id no longer
	// protects it: here it is under another id.
	old := h.publishEvent(h.names.NtfRequest("sales", "r1"), []byte(`{"request_id":"r1","status":"applied"}`), "from-long-ago")
	seq := h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{
		applied("sales", "r1", 1), applied("sales", "r2", 2)}}, "again")
	h.processed(seq)

	h.notification(h.names.NtfRequest("sales", "r2"))
	raw := h.notification(h.names.NtfRequest("sales", "r1"))
	require.Equal(t, old, raw.Sequence, "the first notification is still the only one")
	require.EqualValues(t, 2, h.count(h.names.NtfModel("sales")))
}

func TestStatusNotificationsGoAsOneBatch(t *testing.T) {
	t.Parallel()
	h := start(t)
	seq := h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{
		applied("sales", "r1", 1), applied("sales", "r2", 2), applied("sales", "r3", 3)}}, "one")
	h.processed(seq)
	require.EqualValues(t, 3, h.count(h.names.NtfModel("sales")))
	require.NotContains(t, h.log.String(), "atomic batch refused", "the expected-sequence header is accepted in a batch")
}
