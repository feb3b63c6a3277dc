// Package bench is teatree's benchmark suite (`teatree bench`, `make
// bench`). Every scenario runs teatree in this process, on an embedded NATS
// server and real DuckDB files, and in the same run the baseline that does
// the same work with the same libraries and no teatree: raw DuckDB through
// duckdb-go, raw JetStream through nats.go. The cluster scenarios run a
// local NATS cluster, node processes and an S3 server instead (see
// clusterEnv). It prints a table and writes
// results.json, report.md, bench.txt (benchstat's format) and pprof CPU and
// allocation profiles of the teatree side of each scenario.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// Options configure a run.
type Options struct {
	// Quick runs smaller sizes: the whole suite in about three minutes.
	Quick bool
	// Out receives results.json, report.md, bench.txt, profiles/ and
	// teatree.log.
	Out string
	// Work holds the scratch data of the run (deleted at the end).
	Work string
	// Only runs the named scenarios (see Scenarios); empty runs all.
	Only []string
	// Docs, when set, receives the Markdown report of a complete default
	// run (not quick, every scenario, none failed), in place of the page's
	// "## Last full run" section.
	Docs string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// Scenarios are the names Options.Only accepts, in the order they run.
// Idle models runs first: it measures the process's memory, which later
// scenarios grow.
var Scenarios = []string{"idle-models", "bulk-ingest", "small-mutations", "many-models", "slots", "latency", "cold-start", "model-disk",
	"snapshot", "direct-queries", "large-results", "compute-calls", "compute-describe", "failover", "restore", "cluster-mutations"}

// Result is one row of the report.
type Result struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant,omitempty"`
	// Unit of Teatree and Baseline; HigherIsBetter tells how to read Ratio.
	Unit           string  `json:"unit"`
	HigherIsBetter bool    `json:"higher_is_better"`
	Teatree        float64 `json:"teatree"`
	Baseline       float64 `json:"baseline,omitempty"`
	BaselineName   string  `json:"baseline_name,omitempty"`
	// Ratio is Teatree / Baseline (0 without a baseline).
	Ratio float64 `json:"ratio,omitempty"`
	// Latencies in milliseconds, where the scenario measures them.
	P50  float64 `json:"p50_ms,omitempty"`
	P99  float64 `json:"p99_ms,omitempty"`
	P999 float64 `json:"p999_ms,omitempty"`
	// PeakRSS of the process during the scenario, in MiB.
	PeakRSS float64 `json:"peak_rss_mib,omitempty"`
	Count   int     `json:"count,omitempty"`
	// Notifications of a mutation scenario, counted per request.
	Notifications *Notifications `json:"notifications,omitempty"`
	// Target is the target in words; Met whether it was met (a
	// mutation scenario meets none with a request missing its notification
	// or notified twice).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Notifications count the terminal notifications of a run's requests.
type Notifications struct {
	Requests   int `json:"requests"`
	Notified   int `json:"notified"`
	Duplicates int `json:"duplicates"`
}

// exact says whether every request had exactly one terminal notification.
func (n *Notifications) exact() bool { return n.Notified == n.Requests && n.Duplicates == 0 }

// add counts another run's notifications in n.
func (n *Notifications) add(o *Notifications) {
	n.Requests += o.Requests
	n.Notified += o.Notified
	n.Duplicates += o.Duplicates
}

func (n *Notifications) String() string {
	return fmt.Sprintf("%d/%d, %d duplicates", n.Notified, n.Requests, n.Duplicates)
}

// Report is a whole run.
type Report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Quick    bool      `json:"quick"`
	Machine  Machine   `json:"machine"`
	Results  []Result  `json:"results"`
	Errors   []string  `json:"errors,omitempty"`
}

// runner is the state of one run.
type runner struct {
	opt    Options
	sz     sizes
	log    *slog.Logger
	logf   *os.File
	report *Report
}

// sizes are the scenario sizes of a default or a quick run.
type sizes struct {
	ingestRows                  int
	smallRequests, manyRequests int
	manyModels                  int
	loadFor                     time.Duration
	coldModels                  int
	snapshotMB                  []int
	queryFor                    time.Duration
	largeRows                   int
	idleModels                  int
	// slotModels are written once each on a node of slots slots, sent
	// within slotPhase: every model's first write opens a DuckDB file.
	slotModels, slots int
	slotPhase         time.Duration
	// maxPhase bounds every measured loop in time.
	maxPhase time.Duration
	// failoverModels are active on the node killed, with leases of
	// leaseTTL.
	failoverModels int
	leaseTTL       time.Duration
	// restoreRows make the restored model (about 32 MiB a million);
	// restoreRequests are replayed after its version.
	restoreRows, restoreRequests int
	// clusterModels take clusterRequests on 1, 2 and 3 nodes.
	clusterModels, clusterRequests int
	// computeCalls are calls of a trivial compute function; describeRows
	// the rows of the version described.
	computeCalls, describeRows int
}

func sizesFor(quick bool) sizes {
	if quick {
		return sizes{ingestRows: 1 << 20, smallRequests: 6_000, manyRequests: 4_000, manyModels: 100, loadFor: 2 * time.Second,
			coldModels: 30, snapshotMB: []int{100}, queryFor: 1500 * time.Millisecond, largeRows: 1_000_000, idleModels: 2_000,
			slotModels: 600, slots: 100, slotPhase: 40 * time.Second, maxPhase: 20 * time.Second,
			failoverModels: 20, leaseTTL: 3 * time.Second, restoreRows: 400_000, restoreRequests: 1_000, clusterModels: 30, clusterRequests: 3_000,
			computeCalls: 300, describeRows: 200_000}
	}
	return sizes{ingestRows: 5_000_000, smallRequests: 40_000, manyRequests: 20_000, manyModels: 1_000, loadFor: 8 * time.Second,
		coldModels: 200, snapshotMB: []int{100, 1000}, queryFor: 5 * time.Second, largeRows: 5_000_000, idleModels: 10_000,
		slotModels: 10_000, slots: 500, slotPhase: 10 * time.Minute, maxPhase: 60 * time.Second,
		failoverModels: 100, leaseTTL: natsboot.DefaultLeaseTTL, restoreRows: 3_100_000, restoreRequests: 10_000, clusterModels: 100, clusterRequests: 20_000,
		computeCalls: 2_000, describeRows: 1_000_000}
}

// Run runs the suite and writes its outputs; the report is returned even
// when a scenario failed, with the failure in Errors.
func Run(ctx context.Context, opt Options) (*Report, error) {
	for _, s := range opt.Only {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q: want one of %s", s, strings.Join(Scenarios, ", "))
		}
	}
	if opt.Progress == nil {
		opt.Progress = io.Discard
	}
	if err := os.MkdirAll(filepath.Join(opt.Out, "profiles"), 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(opt.Work, "teatree-bench-")
	if err != nil {
		return nil, fmt.Errorf("scratch dir: %w", err)
	}
	defer os.RemoveAll(work)
	opt.Work = work
	logf, err := os.Create(filepath.Join(opt.Out, "teatree.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r := &runner{opt: opt, sz: sizesFor(opt.Quick), logf: logf,
		log:    slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
		report: &Report{Started: time.Now().UTC(), Quick: opt.Quick, Machine: readMachine(work)}}
	scenarios := map[string]func(context.Context) error{
		"idle-models": r.idleModels, "bulk-ingest": r.bulkIngest, "small-mutations": r.smallMutations,
		"many-models": r.manyModels, "slots": r.slotsTurnover, "latency": r.latencyUnderLoad, "cold-start": r.coldStart, "model-disk": r.modelDisk,
		"snapshot": r.snapshotPublish, "direct-queries": r.directQueries, "large-results": r.largeResults,
		"compute-calls": r.computeCalls, "compute-describe": r.computeDescribe, "failover": r.failover, "restore": r.restore, "cluster-mutations": r.clusterMutations,
	}
	for i, name := range Scenarios {
		if len(opt.Only) > 0 && !slices.Contains(opt.Only, name) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r.stepf("[%d/%d] %s", i+1, len(Scenarios), name)
		resetPeakRSS()
		if err := scenarios[name](ctx); err != nil {
			r.report.Errors = append(r.report.Errors, fmt.Sprintf("%s: %v", name, err))
			r.stepf("  failed: %v", err)
		}
		r.writeProfile(name, "allocs")
		runtime.GC()
	}
	r.report.Duration = time.Since(r.report.Started).Round(time.Second).String()
	if err := r.write(); err != nil {
		return r.report, err
	}
	if opt.Docs != "" {
		if opt.Quick || len(opt.Only) > 0 || len(r.report.Errors) > 0 || ctx.Err() != nil {
			r.stepf("not writing %s: only a complete default run goes there", opt.Docs)
		} else if err := r.report.writeDocs(opt.Docs); err != nil {
			return r.report, fmt.Errorf("write %s: %w", opt.Docs, err)
		}
	}
	if len(r.report.Errors) > 0 {
		return r.report, fmt.Errorf("%d scenarios failed: %s", len(r.report.Errors), strings.Join(r.report.Errors, "; "))
	}
	return r.report, ctx.Err()
}

func (r *runner) stepf(format string, args ...any) {
	fmt.Fprintf(r.opt.Progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// add records a result, filling in the ratio, the target's verdict and the
// scenario's peak RSS.
func (r *runner) add(res Result, target func(Result) bool) {
	if res.Baseline > 0 {
		res.Ratio = res.Teatree / res.Baseline
	}
	if target != nil {
		met := target(res) && (res.Notifications == nil || res.Notifications.exact())
		res.Met = &met
	}
	res.PeakRSS = peakRSSMiB()
	r.report.Results = append(r.report.Results, res)
	line := fmt.Sprintf("  %s %s: teatree %s %s", res.Scenario, res.Variant, human(res.Teatree), res.Unit)
	if res.Baseline > 0 {
		line += fmt.Sprintf(", %s %s (%.2f×)", res.BaselineName, human(res.Baseline), res.Ratio)
	}
	if res.P50 > 0 {
		line += fmt.Sprintf(", p50 %.1f ms p99 %.1f ms", res.P50, res.P99)
	}
	if res.Notifications != nil {
		line += ", notifications " + res.Notifications.String()
	}
	r.stepf("%s", line)
}

// profile runs f under the CPU profiler, writing profiles/<name>.cpu.pprof.
func (r *runner) profile(name string, f func() error) error {
	path := filepath.Join(r.opt.Out, "profiles", slug(name)+".cpu.pprof")
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	defer pf.Close()
	if err := pprof.StartCPUProfile(pf); err != nil {
		return f() // another profile runs (go test -cpuprofile): measure anyway
	}
	defer pprof.StopCPUProfile()
	return f()
}

func (r *runner) writeProfile(name, kind string) {
	f, err := os.Create(filepath.Join(r.opt.Out, "profiles", slug(name)+"."+kind+".pprof"))
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup(kind).WriteTo(f, 0)
}

func slug(s string) string {
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			return c
		}
		if c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return '-'
	}, s)
}

func (r *runner) write() error {
	b, err := json.MarshalIndent(r.report, "", "  ")
	if err != nil {
		return err
	}
	errs := []error{
		os.WriteFile(filepath.Join(r.opt.Out, "results.json"), append(b, '\n'), 0o644),
		os.WriteFile(filepath.Join(r.opt.Out, "report.md"), []byte(r.report.Markdown()), 0o644),
		os.WriteFile(filepath.Join(r.opt.Out, "bench.txt"), []byte(r.report.Benchstat()), 0o644),
	}
	return errors.Join(errs...)
}
