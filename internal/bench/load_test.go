package bench

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// A request notified twice is counted once as done and once as a
// duplicate; notifications of other runs are not counted at all.
func TestTrackerCountsDuplicateNotifications(t *testing.T) {
	srv, err := natsboot.StartServer(natsboot.ServerConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	names := subject.Default()
	tr, err := newTracker(nc, names, "run", 2, nil)
	require.NoError(t, err)
	start := time.Now()
	tr.issue(0, start)
	tr.issue(1, start)
	notify := func(id string) {
		m := nats.NewMsg(names.NtfRequest("m", id))
		m.Header.Set(subject.HeaderRequestID, id)
		m.Header.Set(subject.HeaderStatus, subject.StatusApplied)
		require.NoError(t, nc.PublishMsg(m))
	}
	for _, id := range []string{"run-0", "run-1", "run-0", "warm-1"} {
		notify(id)
	}
	require.NoError(t, nc.Flush())
	require.Eventually(t, func() bool { return tr.pending.Load() == 0 && tr.duplicates.Load() == 1 },
		10*time.Second, 5*time.Millisecond)
	require.Equal(t, &Notifications{Requests: 2, Notified: 2, Duplicates: 1}, tr.result(start).notifications())
}

// A failed request's code goes into the run's note.
func TestLoadNoteNamesFailureCodes(t *testing.T) {
	l := loadResult{issued: 3, done: 3, failed: 3, codes: map[string]int{
		errorCode([]byte(`{"status":"failed","error":{"code":"deadline_exceeded","message":"slow"}}`)): 2,
		errorCode(nil): 1,
	}}
	require.Equal(t, "3 requests failed (deadline_exceeded ×2, unknown ×1).", l.note(3, time.Minute))
}
