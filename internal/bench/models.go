package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// slotsTurnover writes each of more models than the node has slots once,
// so that models open and close within the slots, against the same
// messages published to a bare stream.
func (r *runner) slotsTurnover(ctx context.Context) error {
	ids := modelIDs("s", r.sz.slotModels)
	t, err := r.startWithModels(ctx, "slots", stackOptions{syncAlways: true, slots: r.sz.slots}, ids)
	if err != nil {
		return err
	}
	defer t.stop()
	r.stepf("  teatree: one single-row append to each of %d models on %d slots, %d publishers × %d in flight",
		len(ids), r.sz.slots, publishers, window)
	var res loadResult
	err = r.profile("slots", func() (err error) {
		res, err = r.closedLoopFor(ctx, t, ids, len(ids), "run", r.sz.slotPhase, 3*r.sz.maxPhase)
		return err
	})
	if err != nil {
		return err
	}
	r.stepf("  baseline: the same messages, nats.go async publish to a bare stream")
	base, err := r.baselineLoop(ctx, true, ids, len(ids))
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	// An eviction closes the model through the idle unload, so the
	// unloads count every close and the evictions those made for a slot.
	note := strings.TrimSpace(fmt.Sprintf("the node's log: %d db-manager starts for %d models; %d models closed, their lease released, %d of them to free a slot for a placement. %s",
		t.logged.of(msgManagerStarted), len(ids), t.logged.of(msgUnloaded), t.logged.of(msgEvicted), res.note(len(ids), r.sz.slotPhase)))
	p := percentiles(res.lats, 0.5, 0.99, 0.999)
	r.add(Result{Scenario: "models beyond the slots", Variant: fmt.Sprintf("%d models on %d slots, one append each, sync always", len(ids), r.sz.slots),
		Unit: "req/s", HigherIsBetter: true, Teatree: res.rate(), Baseline: base.rate(), BaselineName: "raw JetStream",
		P50: p[0], P99: p[1], P999: p[2], Count: res.done, Notifications: res.notifications(),
		Target: "finishes; ≥ 0.3× raw JetStream", Note: note},
		func(x Result) bool { return x.Ratio >= 0.3 && res.failed == 0 && res.done == len(ids) })
	return nil
}

// modelDisk measures what a one-row model costs on disk: its DuckDB file
// on the node and the folder of the version that holds the row.
func (r *runner) modelDisk(ctx context.Context) error {
	const model = "disk"
	t, err := r.startWithModels(ctx, "model-disk", stackOptions{syncAlways: true}, []string{model})
	if err != nil {
		return err
	}
	defer t.stop()
	snaps, err := t.followSnapshots(model)
	if err != nil {
		return err
	}
	defer snaps.sub.Unsubscribe()
	seq, _, err := t.appendRow(ctx, model, "row", "events", `{"k":1,"note":"one row"}`, r.sz.maxPhase)
	if err != nil {
		return err
	}
	version, _, err := snaps.waitFor(seq, r.sz.maxPhase)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(t.data, "models", model, "*", "model.duckdb"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("the model's file under %s: found %d (%v)", t.data, len(files), err)
	}
	fi, err := os.Stat(files[0])
	if err != nil {
		return err
	}
	dir := t.blobPath(model, version, "")
	vsize, nfiles, err := dirSize(dir)
	if err != nil {
		return fmt.Errorf("version %d: %w", version, err)
	}
	under := func(x Result) bool { return x.Teatree < 100 }
	r.add(Result{Scenario: "model disk", Variant: "one-row model, its DuckDB file on the node", Unit: "KiB",
		Teatree: float64(fi.Size()) / 1024, Target: "< 100 KiB"}, under)
	r.add(Result{Scenario: "model disk", Variant: fmt.Sprintf("one-row model, the folder of its version %d", version), Unit: "KiB",
		Teatree: float64(vsize) / 1024, Count: nfiles, Target: "< 100 KiB",
		Note: fmt.Sprintf("%d files in the version's folder of the blob store", nfiles)}, under)
	return nil
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) (size int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		size += fi.Size()
		files++
		return nil
	})
	return size, files, err
}
