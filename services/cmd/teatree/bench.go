package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/internal/bench"
)

func benchCmd() *cobra.Command {
	var opt bench.Options
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure teatree on this machine, side by side with raw DuckDB and raw JetStream",
		Long: `Run the benchmark suite. Each scenario starts teatree in this process (an
embedded NATS server, real DuckDB files under --work) and, in the same run,
a baseline doing the same work with the same libraries and no teatree:
duckdb-go on a file, nats.go on a bare JetStream stream, cp.
The cluster scenarios (failover, restore, cluster-mutations) run a local
cluster of three NATS servers in this process, nodes as 'teatree serve
node' processes of this binary, and a versitygw S3 server (built once
from the version tools/go.mod pins: run from the repository, or set
VERSITYGW_BIN).

Scenarios: ` + strings.Join(bench.Scenarios, ", ") + `.

The table goes to stdout; --out receives results.json, report.md,
bench.txt (compare two runs with benchstat), teatree.log and profiles/
(CPU and allocation profiles: go tool pprof -http=: profiles/X.cpu.pprof).
--docs also puts the report of a complete default run in a page (make bench:
docs/benchmarks.md). A default run takes about 20 minutes on 2 cores and
needs about 4 GB of free disk under --work; --quick takes about 3 minutes.`,
		Example: "  teatree bench --quick\n  teatree bench --only small-mutations,direct-queries --out ./bench",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			opt.Progress = cmd.ErrOrStderr()
			rep, err := bench.Run(ctx, opt)
			if rep != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\n%s\nWritten to %s (report.md, results.json, bench.txt, profiles/).\n", rep.Table(), opt.Out)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&opt.Quick, "quick", false, "smaller sizes: the whole suite in about three minutes")
	cmd.Flags().StringVar(&opt.Out, "out", "bench", "directory for the report, results and profiles")
	cmd.Flags().StringVar(&opt.Work, "work", os.TempDir(), "scratch directory for the run's data (removed at the end)")
	cmd.Flags().StringSliceVar(&opt.Only, "only", nil, "run only these scenarios (comma-separated)")
	cmd.Flags().StringVar(&opt.Docs, "docs", "", `also write the report of a complete default run into this page's "## Last full run" section (make bench: docs/benchmarks.md)`)
	return cmd
}
