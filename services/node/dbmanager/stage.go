package dbmanager

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// staged is a consistent state of the model waiting to be published as a
// version: a copy of the model file taken on the writer after a checkpoint,
// and the export connection in a read transaction that sees exactly that
// state, for the version's Parquet files.
type staged struct {
	path       string
	appliedSeq uint64
	// tables changed since the previous version; nil when all may have.
	tables map[string]bool
	// export reads the state at appliedSeq until end is called.
	export *sql.Conn
	// budget is where the publication took its place (nil: none).
	budget *Budget
}

// end ends the export's read transaction.
func (st *staged) end(ctx context.Context) error {
	_, err := st.export.ExecContext(ctx, "ROLLBACK")
	return err
}

// maybeSnapshot stages a copy when the model's policy says so and the
// node's budget has room for a publication, and returns how long to wait
// before asking again. Changes made while the budget is full wait for the
// next version, which then holds them all.
func (w *writer) maybeSnapshot(ctx context.Context) (time.Duration, error) {
	if err := w.m.snap.lostErr(); err != nil {
		return 0, err
	}
	if w.changed == 0 && !w.m.snap.unpublished() {
		if w.m.snap.busy() {
			// Look again once the publication in flight is done: if it
			// fails, its changes wait for a retry.
			return 50 * time.Millisecond, nil
		}
		w.now = false
		return 0, nil
	}
	pol := w.m.cfg.Spec.GetSnapshot()
	interval := time.Duration(pol.GetIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = DefaultSnapshotInterval
	}
	every := int(pol.GetEveryMutations())
	if every <= 0 {
		every = DefaultSnapshotEvery
	}
	since := time.Since(w.lastSnap)
	if !w.now && w.changed < every && since < interval {
		return interval - since, nil
	}
	if w.m.snap.busy() {
		return min(interval/4, 50*time.Millisecond), nil
	}
	// A reader waiting for a version (min_seq) goes first: its version
	// takes no place in the budget, which bounds the others.
	budget := w.m.cfg.Budget
	if w.now {
		budget = nil
	}
	if !budget.tryPublish() {
		return min(interval/4, 50*time.Millisecond), nil
	}
	if err := w.m.cfg.Budget.startWork(ctx); err != nil {
		budget.published()
		return 0, nil // ctx ended: Run stops
	}
	st, err := w.stage(noInterrupt(ctx))
	w.m.cfg.Budget.endWork()
	if err != nil {
		budget.published()
		return 0, err
	}
	st.budget = budget
	w.changed, w.tables, w.allTables, w.lastSnap, w.now = 0, nil, false, time.Now(), false
	w.m.snap.start(ctx, st)
	// Look again after an interval: a publication that failed is retried.
	return interval, nil
}

// stage checkpoints the file, copies it and begins the export's read
// transaction. The writer is paused meanwhile, so both are exactly the
// state at applied.
func (w *writer) stage(ctx context.Context) (*staged, error) {
	if _, err := w.st.conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return nil, nodeError{fmt.Errorf("checkpoint: %w", err)}
	}
	dst := filepath.Join(w.m.stagingDir(), strconv.FormatUint(w.applied, 10)+".duckdb")
	if err := copyFile(dst, w.st.path); err != nil {
		return nil, nodeError{fmt.Errorf("stage snapshot: %w", err)}
	}
	st := &staged{path: dst, appliedSeq: w.applied, export: w.st.export}
	if err := st.begin(ctx); err != nil {
		os.Remove(dst)
		return nil, nodeError{fmt.Errorf("stage snapshot: %w", err)}
	}
	if !w.allTables {
		st.tables = w.tables
		if st.tables == nil {
			st.tables = map[string]bool{}
		}
	}
	return st, nil
}

// begin begins the export's read transaction and checks that it sees the
// staged state: DuckDB takes a transaction's snapshot at its first read.
func (st *staged) begin(ctx context.Context) error {
	if _, err := st.export.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return fmt.Errorf("begin export: %w", err)
	}
	var applied uint64
	err := st.export.QueryRowContext(ctx, "SELECT applied_seq FROM _tt_state").Scan(&applied)
	if err == nil && applied != st.appliedSeq {
		err = fmt.Errorf("export sees applied_seq %d, not %d", applied, st.appliedSeq)
	}
	if err != nil {
		return fmt.Errorf("begin export: %w", errors.Join(err, st.end(ctx)))
	}
	return nil
}

// copyFile copies src to dst; between two files on Linux, io.Copy uses
// copy_file_range, so the bytes need not pass through Go. It does not sync:
// the writer waits while it copies, the copy is synced when it is published
// (blob.Dir.PutFile), and a copy a crash left half written is swept at open.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
