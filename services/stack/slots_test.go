package stack_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
	"github.com/teatree-dev/teatree/services/stack"
)

// TestMoreModelsThanSlots writes 12 models in rounds on a node with 3
// slots and an idle timeout far beyond the test: only closing the least
// recently used settled model frees a slot, and every request must still
// be applied once with one notification, none of them unavailable.
func TestMoreModelsThanSlots(t *testing.T) {
	manyModels(t, 12, 3, 4)
}

// TestMoreModelsThanConsumerLimit runs more models than nats-server's
// default of 1,000 consumers per stream through one node, each written
// twice.
func TestMoreModelsThanConsumerLimit(t *testing.T) {
	manyModels(t, 1200, 64, 2)
}

// manyModels runs dispatcher, notifier and one node with slots slots in
// process, writes models models rounds times each (round r of every model
// after round r-1 of every model), and checks every request's one
// notification and the rows in every model file.
func manyModels(t *testing.T, models, slots, rounds int) {
	ctx := context.Background()
	data := t.TempDir()
	st := runStack(t, stack.Config{
		Services: []string{stack.Dispatcher, stack.Notifier, stack.Node},
		Boot:     natsboot.Config{LeaseTTL: 2 * time.Second},
		Data:     data,
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: slots, Memory: 4 << 30, Threads: 1},
		Manager:  dbmanager.Config{IdleTimeout: time.Hour},
	})
	js, logs, stop := st.js, st.logs, st.stop
	kv, mut, ntf := st.models, st.mut, st.ntf
	names := subject.Default()

	model := func(i int) string { return fmt.Sprintf("m%04d", i) }
	for i := range models {
		_, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: model(i)})
		require.NoError(t, err)
	}
	publish := func(m, id, sql string) {
		msg := nats.NewMsg(names.Mut(m, subject.OpSQL))
		msg.Data = []byte(`{"sql":"` + sql + `"}`)
		msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
		msg.Header.Set(subject.HeaderMsgID, subject.MsgID(m, id))
		_, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	notified := func(n int) {
		require.Eventually(t, func() bool {
			// Request notifications only: versions are notified too.
			info, err := ntf.Info(ctx, jetstream.WithSubjectFilter(names.NtfRequest("*", "*")))
			if err != nil {
				return false
			}
			var got uint64
			for _, c := range info.State.Subjects {
				got += c
			}
			return got >= uint64(n)
			// A bound far above what a loaded 2-core machine needs (about
			// 50 ms a model): it only stops a test that will not finish.
		}, 2*time.Minute+time.Duration(models)*250*time.Millisecond, 250*time.Millisecond, "notifications: want %d; logs:\n%s", n, logs)
	}
	start := time.Now()
	for round := range rounds {
		for i := range models {
			sql := "insert into t values (" + strconv.Itoa(round) + ")"
			if round == 0 {
				sql = "create table t (x int)"
			}
			publish(model(i), "r"+strconv.Itoa(round), sql)
		}
		notified((round + 1) * models)
	}
	t.Logf("%d models x %d requests on %d slots: %s", models, rounds, slots, time.Since(start))
	require.Contains(t, logs.String(), "closed least recently used model", "models must have been closed for slots")

	// One notification per request, each applied.
	info, err := ntf.Info(ctx, jetstream.WithSubjectFilter(names.NtfAll()))
	require.NoError(t, err)
	for i := range models {
		for round := range rounds {
			subj := names.NtfRequest(model(i), "r"+strconv.Itoa(round))
			require.Equal(t, uint64(1), info.State.Subjects[subj], "notifications on %s", subj)
			last, err := ntf.GetLastMsgForSubject(ctx, subj)
			require.NoError(t, err)
			require.Equal(t, subject.StatusApplied, last.Header.Get(subject.HeaderStatus), "%s: %s", subj, last.Data)
		}
	}
	// Every insert applied once: the rows, read from the files after the
	// node has closed them.
	stop()
	for i := range models {
		files, err := filepath.Glob(filepath.Join(data, "models", model(i), "*", "model.duckdb"))
		require.NoError(t, err)
		require.Len(t, files, 1, model(i))
		db, err := sql.Open("duckdb", files[0]+"?access_mode=read_only")
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRow("select count(*) from t").Scan(&n))
		require.NoError(t, db.Close())
		require.Equal(t, rounds-1, n, model(i))
	}
}
