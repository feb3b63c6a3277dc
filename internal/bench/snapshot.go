package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// sql runs statements as a mutation and waits for the terminal
// notification, returning the request's sequence and when it arrived.
func (t *teatree) sql(ctx context.Context, model, id, stmt string, timeout time.Duration) (uint64, time.Time, error) {
	body, _ := json.Marshal(map[string]string{"sql": stmt})
	m := nats.NewMsg(t.names.Mut(model, subject.OpSQL))
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	m.Data = body
	return t.mutate(ctx, model, id, m, timeout)
}

// appendRow appends one NDJSON row and waits for its notification.
func (t *teatree) appendRow(ctx context.Context, model, id, table, row string, timeout time.Duration) (uint64, time.Time, error) {
	m := nats.NewMsg(t.names.Mut(model, subject.OpAppend))
	m.Header.Set(subject.HeaderTable, table)
	m.Header.Set(subject.HeaderContentType, subject.ContentNDJSON)
	m.Data = []byte(row + "\n")
	return t.mutate(ctx, model, id, m, timeout)
}

func (t *teatree) mutate(ctx context.Context, model, id string, m *nats.Msg, timeout time.Duration) (uint64, time.Time, error) {
	sub, err := t.nc.SubscribeSync(t.names.NtfRequest(model, id))
	if err != nil {
		return 0, time.Time{}, err
	}
	defer sub.Unsubscribe()
	m.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
	ack, err := t.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, time.Time{}, err
	}
	msg, err := sub.NextMsg(timeout)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("%s on %s: no notification: %w", id, model, err)
	}
	if msg.Header.Get(subject.HeaderStatus) != subject.StatusApplied {
		return 0, time.Time{}, fmt.Errorf("%s on %s: %s", id, model, msg.Data)
	}
	return ack.Sequence, time.Now(), nil
}

// snapshots follows a model's snapshot notifications.
type snapshots struct{ sub *nats.Subscription }

func (t *teatree) followSnapshots(model string) (*snapshots, error) {
	sub, err := t.nc.SubscribeSync(t.names.Prefix() + ".ntf." + model + ".snap.*")
	if err != nil {
		return nil, err
	}
	return &snapshots{sub}, sub.SetPendingLimits(-1, -1)
}

// waitFor returns the first version whose applied_seq reaches seq, and
// when its notification arrived.
func (s *snapshots) waitFor(seq uint64, timeout time.Duration) (uint64, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		msg, err := s.sub.NextMsg(time.Until(deadline))
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("no version with applied_seq %d: %w", seq, err)
		}
		at := time.Now()
		applied, _ := strconv.ParseUint(msg.Header.Get(subject.HeaderSeq), 10, 64)
		version, _ := strconv.ParseUint(msg.Header.Get(subject.HeaderVersion), 10, 64)
		if applied >= seq {
			return version, at, nil
		}
	}
}

// createTable creates a model with one table of generated rows (about 23
// MiB of DuckDB file per million rows) and waits for its first version.
func (t *teatree) createTable(ctx context.Context, spec *teatreev1.ModelSpec, rows int, extra string) (uint64, error) {
	if err := t.createModels(ctx, []*teatreev1.ModelSpec{spec}); err != nil {
		return 0, err
	}
	snaps, err := t.followSnapshots(spec.GetId())
	if err != nil {
		return 0, err
	}
	defer snaps.sub.Unsubscribe()
	stmt := fmt.Sprintf("create table big as select range as id, random() as v, md5(range::varchar) as s from range(%d);%s", rows, extra)
	seq, _, err := t.sql(ctx, spec.GetId(), "create", stmt, 10*time.Minute)
	if err != nil {
		return 0, err
	}
	v, _, err := snaps.waitFor(seq, 10*time.Minute)
	return v, err
}

// snapshotPublish measures the time from a mutation's applied notification
// to the notification of the version that contains it, when a small table
// changed (the big one's Parquet is linked) and when the big one did.
func (r *runner) snapshotPublish(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "snapshot", stackOptions{})
	if err != nil {
		return err
	}
	defer t.stop()
	for _, mb := range r.sz.snapshotMB {
		model := fmt.Sprintf("snap%d", mb)
		rows := mb * 1_000_000 / 23
		r.stepf("  %s: generating %d rows (about %d MB)", model, rows, mb)
		// Generating a GB of rows takes longer than the default request
		// timeout on a slow disk: the timeout is the create's wait.
		spec := &teatreev1.ModelSpec{Id: model, Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 1, EveryMutations: 1},
			Limits: &teatreev1.ModelLimits{RequestTimeoutMs: (10 * time.Minute).Milliseconds()}}
		version, err := t.createTable(ctx, spec, rows, "create table small (id bigint, note varchar); insert into small values (0, 'first');")
		if err != nil {
			return err
		}
		// Appends, whose changed table is known: an sql mutation may change
		// any table, so its version rewrites every table's Parquet.
		measure := func(id, table, row string) (time.Duration, error) {
			snaps, err := t.followSnapshots(model)
			if err != nil {
				return 0, err
			}
			defer snaps.sub.Unsubscribe()
			var d time.Duration
			err = r.profile(fmt.Sprintf("snapshot-%d-%s", mb, id), func() error {
				seq, applied, err := t.appendRow(ctx, model, id, table, row, 5*time.Minute)
				if err != nil {
					return err
				}
				var at time.Time
				version, at, err = snaps.waitFor(seq, 10*time.Minute)
				d = at.Sub(applied)
				return err
			})
			return d, err
		}
		r.stepf("  %s: publishing a version after a change to the small table", model)
		small, err := measure("small", "small", `{"id": 1, "note": "second"}`)
		if err != nil {
			return err
		}
		r.stepf("  %s: publishing a version after a change to the big table", model)
		big, err := measure("big", "big", `{"id": -1, "v": 0.5, "s": "changed"}`)
		if err != nil {
			return err
		}
		file := t.blobPath(model, version, "model.duckdb")
		fi, err := os.Stat(file)
		if err != nil {
			return err
		}
		r.stepf("  baselines: cp of the %d MiB file; duckdb COPY TO parquet", fi.Size()>>20)
		cp, err := timeCp(file, filepath.Join(r.opt.Work, "cp.duckdb"))
		if err != nil {
			return err
		}
		pqBig, pqSmall, err := timeParquet(ctx, file, r.opt.Work)
		if err != nil {
			return err
		}
		variant := fmt.Sprintf("%d MiB model", fi.Size()>>20)
		note := fmt.Sprintf("cp %.2fs, Parquet of the big table %.2fs, of the small one %.3fs", cp.Seconds(), pqBig.Seconds(), pqSmall.Seconds())
		r.add(Result{Scenario: "snapshot publish", Variant: variant + ", small table changed", Unit: "s",
			Teatree: small.Seconds(), Baseline: (cp + pqSmall).Seconds(), BaselineName: "cp + Parquet of small", Note: note,
			Target: "≤ 1.2× cp + Parquet of changed tables"}, func(x Result) bool { return x.Ratio <= 1.2 })
		r.add(Result{Scenario: "snapshot publish", Variant: variant + ", big table changed", Unit: "s",
			Teatree: big.Seconds(), Baseline: (cp + pqBig).Seconds(), BaselineName: "cp + Parquet of big",
			Target: "≤ 1.2× cp + Parquet of changed tables"}, func(x Result) bool { return x.Ratio <= 1.2 })
		if err := t.api.DeleteModel(ctx, model); err != nil {
			return err
		}
	}
	return nil
}

// timeCp copies a file with the cp tool, as an operator would.
func timeCp(src, dst string) (time.Duration, error) {
	defer os.Remove(dst)
	start := time.Now()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cp: %v: %s", err, out)
	}
	return time.Since(start), nil
}

// timeParquet writes the Parquet of both tables straight from the file.
func timeParquet(ctx context.Context, file, dir string) (big, small time.Duration, err error) {
	db, err := sql.Open("duckdb", file+"?access_mode=read_only")
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	run := func(table string) (time.Duration, error) {
		dst := filepath.Join(dir, table+".parquet")
		defer os.Remove(dst)
		start := time.Now()
		_, err := db.ExecContext(ctx, "COPY "+table+" TO '"+dst+"' (FORMAT parquet)")
		return time.Since(start), err
	}
	if big, err = run("big"); err != nil {
		return 0, 0, err
	}
	small, err = run("small")
	return big, small, err
}
