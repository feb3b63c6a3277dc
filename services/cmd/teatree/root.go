package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "teatree",
		Short: "Serve many DuckDB models through NATS JetStream",
		Long: `teatree turns many small DuckDB databases ("models") into a service.

Clients publish mutations (append, upsert, sql) to tt.mut.<model>.<op> on
NATS JetStream, or POST them to the HTTP gateway. One db-manager per model
applies them in order, exactly once, and publishes immutable, versioned
read-only DuckDB and Parquet files that anyone can download and query.

Start everything on this machine:    teatree up
Then, in another terminal:           teatree model create sales
                                     teatree append sales orders orders.csv --wait
                                     teatree pull sales`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCmd(), serveCmd(), modelCmd(), appendCmd(), sqlCmd(), requestCmd(), functionCmd(), callCmd(), callsCmd(), workersCmd(), snapshotsCmd(), pullCmd(), queryCmd(), watchCmd(), benchCmd(), devCmd(), authCmd())
	return root
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
