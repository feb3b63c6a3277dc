package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/services/worker/builtin"
)

func serveWorkerCmd() *cobra.Command {
	var natsURL, prefix, logLevel, id, principal string
	var creds natsboot.Credentials
	var capabilities, handlers []string
	var slots int
	var stopGrace time.Duration
	all := builtin.Handlers()
	names := slices.Sorted(maps.Keys(all))
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run a compute worker: the built-in handlers of compute functions",
		Long: `Run a compute worker against a NATS server or cluster where teatree runs.
It serves compute functions whose handler is one of its --handlers and
whose capabilities it all has: it advertises itself in tt_compute, pulls
their jobs while one of its --slots is free, runs each on the version of
the model the job names (its model.duckdb, attached read-only) and writes
the result where the job says. See "Workers" in docs/contract.md: a worker
in any other language speaks the same protocol.

Built-in handlers:
  describe      per-column statistics of a table (args: table), as DuckDB's SUMMARIZE
  sample        n random rows of a table (args: table, n default 10)
  sql_to_table  the rows of one read query on the version (args: sql)

Where teatree runs with an access policy (--auth), give the worker's NATS
credentials (--nats-user and --nats-password or TEATREE_NATS_PASSWORD, or
--nats-nkey-seed). Its replies then come to its principal's inbox,
_INBOX_<principal>: the principal is --principal, by default the
--nats-user (name each principal's NATS user after it; with an nkey, give
--principal). A route whose consumer the server refuses (its work grant
does not cover the route's capabilities, or no function of the route is
registered) is skipped with a warning.

SIGTERM or Ctrl-C stops pulling jobs and lets the running ones finish for
up to --stop-grace; the others go back to the queue for another worker.`,
		Example: `  teatree serve worker --nats nats://10.0.0.1:4222 --capabilities go --slots 4 --id worker-a
  teatree serve worker --capabilities go,gpu --handlers describe,sample`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := subject.New(prefix)
			if err != nil {
				return err
			}
			serve := map[string]worker.Handler{}
			for _, h := range handlers {
				if all[h] == nil {
					return fmt.Errorf("--handlers %q: want some of %s", h, strings.Join(names, ", "))
				}
				serve[h] = all[h]
			}
			cfg := worker.Config{Names: n, ID: id, Capabilities: capabilities, Slots: slots, Handlers: serve, StopGrace: stopGrace}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if principal == "" {
				principal = creds.User
			}
			return runWorker(ctx, cmd, natsURL, creds, principal, cfg, newLogger(logLevel))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&natsURL, "nats", "nats://127.0.0.1:4222", "URL of the NATS server, or a comma-separated list of seed URLs of a cluster")
	natsCredentialFlags(fl, &creds)
	fl.StringVar(&principal, "principal", "", "the worker's principal in the access policy, whose inbox prefix (_INBOX_<principal>) it uses (default --nats-user)")
	fl.StringVar(&prefix, "prefix", subject.DefaultPrefix, "subject prefix of every teatree subject")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&id, "id", "", "this worker's id in tt_compute and in its calls' records (default HOSTNAME-PID)")
	fl.StringSliceVar(&capabilities, "capabilities", []string{"go"}, "capabilities this worker has; it serves the functions whose every required capability is among them")
	fl.StringSliceVar(&handlers, "handlers", names, "handlers this worker serves")
	fl.IntVar(&slots, "slots", worker.DefaultSlots, "how many calls this worker runs at once")
	fl.DurationVar(&stopGrace, "stop-grace", worker.DefaultStopGrace, "how long a stopping worker lets its running calls finish")
	return cmd
}

// runWorker connects, waits until teatree's streams and buckets exist (a
// worker does not create them: their replicas are the services' to set),
// and runs the worker until ctx ends.
func runWorker(ctx context.Context, cmd *cobra.Command, urls string, creds natsboot.Credentials, principal string, cfg worker.Config, log *slog.Logger) error {
	// Before NATS, so that a bad flag fails at once.
	if err := cfg.WithDefaults().Validate(); err != nil {
		return err
	}
	if _, err := natsboot.SeedURLs(urls); err != nil {
		return err
	}
	nc, err := worker.Connect(urls, creds, principal)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	kv, err := waitForTeatree(ctx, js, cfg.Names, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w, err := worker.New(cfg, worker.Deps{JS: js, Compute: kv, Log: log.With("service", "worker")})
	if err != nil {
		return err
	}
	return w.Run(ctx, func() {
		fmt.Fprintf(cmd.OutOrStdout(), "teatree serving [worker] %s against %s: handlers %v, capabilities %v, %d slots\n",
			w.ID(), nc.ConnectedUrlRedacted(), slices.Sorted(maps.Keys(cfg.Handlers)), cfg.Capabilities, cfg.Slots)
	})
}

// waitForTeatree waits until TT_CALL and tt_compute exist, and returns
// the bucket.
func waitForTeatree(ctx context.Context, js jetstream.JetStream, n subject.Names, log *slog.Logger) (jetstream.KeyValue, error) {
	warned := false
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.Stream(actx, n.CallStream())
		var kv jetstream.KeyValue
		if err == nil {
			kv, err = js.KeyValue(actx, n.ComputeBucket())
		}
		cancel()
		if err == nil {
			return kv, nil
		}
		missing := errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
		if !missing && !natsboot.Transient(err) {
			return nil, fmt.Errorf("open %s and %s: %w", n.CallStream(), n.ComputeBucket(), err)
		}
		if !warned {
			log.WarnContext(ctx, "waiting for NATS and teatree's streams (start teatree's services)", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
