package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/notifier"
	"github.com/teatree-dev/teatree/services/stack"
)

// serverFlags are the flags `up` and `serve` share.
type serverFlags struct {
	data, httpAddr, prefix, logLevel string
	blobs, nodeID, size              string
	capabilities, webhookAllow       []string
	webhookSecret                    string
	auth                             string
	tls                              tlsFlags
	insecure                         bool
	slots, maxBatch, replicas        int
	threads, publications            int
	memory                           byteSize
	maxBody                          int64
	leaseTTL, notificationAge        time.Duration
	idleTimeout                      time.Duration
}

func (f *serverFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.data, "data", "./teatree-data", "directory for model files, snapshots (blobs/) and, with up, JetStream's files (nats/)")
	fl.StringVar(&f.blobs, "blobs", "", "snapshot store shared by nodes and gateways: a directory, or s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION&path_style=true (every parameter optional; without endpoint, AWS; credentials from the AWS environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws) (default DATA/blobs)")
	fl.StringVar(&f.httpAddr, "http", "127.0.0.1:8080", "HTTP address of the gateway")
	fl.StringVar(&f.prefix, "prefix", subject.DefaultPrefix, "subject prefix of every teatree subject")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.nodeID, "node-id", "local", "this node's id in leases and heartbeats; keep it stable across restarts")
	fl.StringSliceVar(&f.capabilities, "capabilities", []string{"duckdb"}, "capabilities this node advertises")
	fl.IntVar(&f.slots, "slots", 1000, "how many models this node runs at once")
	fl.StringVar(&f.size, "size", "", "this node's size class, "+strings.Join(sizeclass.Names(), ", ")+" (2 vCPU/2 GiB, 4/4, 8/16, 16/64): sets the defaults of --memory and --threads and advertises the capability size:CLASS, so that models created with size:X (X no larger) may run here; see docs/sizing.md")
	fl.Int64Var(&f.maxBody, "max-body", 256<<20, "largest HTTP request body the gateway accepts, in bytes")
	fl.IntVar(&f.maxBatch, "max-batch", 1000, "most mutations applied in one DuckDB transaction")
	fl.Var(&f.memory, "memory", "DuckDB memory of all the models this node runs together (0: half the machine's memory); each model's limit is --memory/--slots, at least 64MiB, and when that is more than an equal share fewer models work at once; for a few large models, lower --slots")
	fl.IntVar(&f.threads, "threads", 0, "DuckDB threads of all the models this node runs together, shared out per slot, at least one each; at most 8 models per thread work at once (0: the cores)")
	fl.IntVar(&f.publications, "publications", 0, "versions this node publishes at once across its models; under load a model's versions come further apart (0: the cores)")
	fl.IntVar(&f.replicas, "replicas", 1, "replicas of every stream and bucket (3 in a cluster)")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", time.Minute, "close a model's DuckDB file and give up its lease after this long without mutations (0: never); the next mutation opens it again")
	fl.DurationVar(&f.leaseTTL, "lease-ttl", natsboot.DefaultLeaseTTL, "how long a model's lease outlives its node")
	fl.DurationVar(&f.notificationAge, "notification-max-age", natsboot.DefaultNotificationMaxAge, "how long notifications are kept for replay (TT_NTF)")
	fl.StringSliceVar(&f.webhookAllow, "webhook-allow", nil, "hosts (host or host:port) webhooks may be delivered to; none by default")
	fl.StringVar(&f.auth, "auth", "", `access policy file, YAML or JSON (see docs/security.md); without it the gateway is open to anyone who reaches it. Every /v1/ request then needs Authorization: Bearer <token>, and may do only what its principal's grants allow:
  principals:
    - name: analyst
      tokens: ["sha256:..."]          # teatree auth token prints a token and this line
      allow: [{models: ["sales*"], roles: [read]}]   # roles: admin, write, read, work
      limits: {queries: 4, mutations_per_second: 50}
With up, the embedded NATS server admits only the policy's NATS users, each with its subject permissions.
SIGHUP reloads the file (a revoked token or user is refused from then on); a bad file fails the start`)
	fl.BoolVar(&f.insecure, "insecure", false, "let the gateway (and, with up, NATS) listen on an address other machines can reach without --auth, open to anyone there")
	f.tls.register(fl)
	fl.StringVar(&f.webhookSecret, "webhook-secret", os.Getenv("TEATREE_WEBHOOK_SECRET"), "key of the HMAC-SHA256 signature of webhook deliveries (or set TEATREE_WEBHOOK_SECRET)")
}

// config is the configuration of the services; listens are the addresses
// besides --http the process listens on (up's --nats), which a certificate
// made by --tls auto covers too.
func (f *serverFlags) config(services []string, listens ...string) (stack.Config, error) {
	names, err := subject.New(f.prefix)
	if err != nil {
		return stack.Config{}, err
	}
	cfg := stack.Config{
		Services: services,
		Data:     f.data,
		Blobs:    f.blobs,
		HTTPAddr: f.httpAddr,
		MaxBody:  f.maxBody,
		Boot:     natsboot.Config{Names: names, Replicas: f.replicas, LeaseTTL: f.leaseTTL, NotificationMaxAge: f.notificationAge},
		Node: node.Config{ID: f.nodeID, Capabilities: f.capabilities, Slots: f.slots,
			Memory: int64(f.memory), Threads: f.threads, Publications: f.publications, Size: f.size},
		Log:      newLogger(f.logLevel),
		Webhooks: notifier.WebhookConfig{Allow: f.webhookAllow, Secret: f.webhookSecret},
	}
	cfg.Manager.MaxBatchMessages = f.maxBatch
	cfg.Manager.IdleTimeout = f.idleTimeout
	if f.auth != "" {
		if cfg.Auth, err = auth.NewHolder(f.auth); err != nil {
			return stack.Config{}, fmt.Errorf("--auth: %w", err)
		}
	}
	if cfg.TLS, err = f.tls.config(f.data, append([]string{f.httpAddr}, listens...)...); err != nil {
		return stack.Config{}, err
	}
	return cfg, nil
}

func upCmd() *cobra.Command {
	var f serverFlags
	var natsAddr, sync string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything in one process with an embedded NATS server",
		Long: `Run an embedded NATS server (JetStream, file storage under --data) and one
gateway, dispatcher, notifier and node, in one process. SIGTERM or Ctrl-C
stops it cleanly; kill -9 loses no acknowledged request.

--sync always makes JetStream fsync every message before acknowledging it
(nothing acknowledged is lost even if the machine crashes); --sync interval
fsyncs every two minutes (faster; a machine crash, not a process crash, can
lose the last acknowledged messages).

Without --auth everything is open to anyone on this machine, so --http and
--nats must be loopback addresses unless --insecure says otherwise.
--tls auto (or --tls-cert and --tls-key) serves HTTPS and NATS over TLS
only; the start banner says how clients trust a self-signed certificate.
See docs/security.md.`,
		Example: "  teatree up --data ./teatree-data --http 127.0.0.1:8080 --nats 127.0.0.1:4222",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkExposure(f.auth != "", f.insecure, listen{"--http", f.httpAddr}, listen{"--nats", natsAddr}); err != nil {
				return err
			}
			cfg, err := f.config(stack.AllServices, natsAddr)
			if err != nil {
				return err
			}
			if cfg.TLS != nil {
				cfg.Embedded.TLS = cfg.TLS.Clone()
			}
			switch sync {
			case "always":
				cfg.Embedded.SyncAlways = true
			case "interval":
			default:
				return fmt.Errorf("--sync %q: want always or interval", sync)
			}
			cfg.Embedded.Addr = natsAddr
			cfg.OnReady = func(r stack.Ready) {
				var trust, cacert string
				if cfg.TLS != nil {
					trust = f.tls.trustNotice(cfg.TLS, f.data, r.HTTPURL)
				}
				if f.tls.mode == "auto" {
					cacert = "--cacert " + f.tls.certFile(f.data) + " "
				}
				var token string
				if f.auth != "" {
					// The policy's principals need their tokens.
					token = "  export TEATREE_TOKEN=<a token of the policy (teatree auth token)>\n"
					cacert += `-H "Authorization: Bearer $TEATREE_TOKEN" `
				}
				fmt.Fprintf(cmd.OutOrStdout(), `teatree is up.
  HTTP:  %[1]s
  NATS:  %[2]s
  data:  %[3]s
  access: %[4]s
%[5]s
Try:
%[7]s  teatree model create sales
  curl %[6]s-X POST --data-binary $'id,amount\n1,9.5\n2,3' -H 'Content-Type: text/csv' '%[1]s/v1/models/sales/tables/orders/rows?wait=applied'
  teatree sql sales "update orders set amount = amount * 2" --wait
  teatree snapshots sales
  teatree pull sales --out ./sales
`, r.HTTPURL, r.NATSURL, f.data, openNotice(f.auth, f.insecure), trust, cacert, token)
			}
			return runUntilSignal(cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&natsAddr, "nats", "127.0.0.1:4222", "address of the embedded NATS server")
	cmd.Flags().StringVar(&sync, "sync", "always", "JetStream fsync policy: always or interval")
	return cmd
}

func serveCmd() *cobra.Command {
	var f serverFlags
	var natsURL string
	var creds natsboot.Credentials
	cmd := &cobra.Command{
		Use:   "serve SERVICE...",
		Short: "Run some services against an external NATS server or cluster",
		Long: `Run any subset of gateway, dispatcher, notifier and node against a NATS
server or cluster with JetStream. Streams, buckets and consumers are created
or checked at start, so the services may come up in any order. Run as many
gateways and nodes as you like; give each node its own --node-id.

--nats takes one URL or a comma-separated list of seeds of a cluster; the
process connects to any of them and learns of the others. Until a server
answers, and while a cluster is still electing its leaders, it waits and
retries (logging why) rather than exits. On a cluster of three servers
give --replicas 3, the same on every process. To try one on this machine:
teatree dev cluster.

Compute workers run apart from these: teatree serve worker --help. The NATS
auth callout of an --auth policy: teatree serve auth --help.`,
		Example: `  teatree serve gateway dispatcher notifier --nats nats://10.0.0.1:4222
  teatree serve node --nats nats://10.0.0.1:4222 --node-id worker-2 --data /var/lib/teatree
  teatree serve node --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4222 --replicas 3 --node-id worker-3`,
		Args:      cobra.MinimumNArgs(1),
		ValidArgs: stack.AllServices,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(args, stack.Gateway) && f.tls.set() {
				return errors.New("--tls-cert, --tls-key and --tls are the gateway's HTTPS: serve gateway too, or drop them (NATS's TLS is --nats-ca)")
			}
			if slices.Contains(args, stack.Gateway) {
				if err := checkExposure(f.auth != "", f.insecure, listen{"--http", f.httpAddr}); err != nil {
					return err
				}
			}
			cfg, err := f.config(args)
			if err != nil {
				return err
			}
			cfg.NATSURL, cfg.NATS = natsURL, creds
			cfg.OnReady = func(r stack.Ready) {
				fmt.Fprintf(cmd.OutOrStdout(), "teatree serving %v against %s %s\n", args, r.NATSURL, r.HTTPURL)
			}
			return runUntilSignal(cfg)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&natsURL, "nats", "nats://127.0.0.1:4222", "URL of the NATS server, or a comma-separated list of seed URLs of a cluster")
	natsCredentialFlags(cmd.Flags(), &creds)
	cmd.AddCommand(serveWorkerCmd(), serveAuthCmd())
	return cmd
}

func runUntilSignal(cfg stack.Config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Auth != nil {
		cfg.Auth.ReloadOnSIGHUP(ctx, cfg.Log)
	}
	return stack.Run(ctx, cfg)
}
