package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

const (
	serverEnv = "TEATREE_URL"
	tokenEnv  = "TEATREE_TOKEN"
	caEnv     = "TEATREE_CA"
)

// addServerFlag adds --server, the gateway URL, --token, the bearer token
// of a gateway started with --auth, and --ca, the CA of an https://
// gateway's certificate, to cmd and its children.
func addServerFlag(cmd *cobra.Command) {
	def := os.Getenv(serverEnv)
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	cmd.PersistentFlags().String("server", def, "gateway URL (or set "+serverEnv+")")
	cmd.PersistentFlags().String("token", "", "bearer token for a gateway started with --auth (or set "+tokenEnv+"; teatree auth token makes one)")
	cmd.PersistentFlags().String("ca", os.Getenv(caEnv), "PEM file of the CA, or the self-signed certificate (DATA/tls/cert.pem of up --tls auto), of an https:// gateway (or set "+caEnv+"; default the system's CAs)")
}

// tokenOf is --token, or else $TEATREE_TOKEN; the environment is read
// here, not as the flag's default, so that --help never prints a secret.
func tokenOf(cmd *cobra.Command) string {
	if t, _ := cmd.Flags().GetString("token"); t != "" {
		return t
	}
	return os.Getenv(tokenEnv)
}

func modelCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Create, list, show, move and delete models"}
	addServerFlag(cmd)
	var spec teatreev1.ModelSpec
	var snap teatreev1.SnapshotPolicy
	create := &cobra.Command{
		Use:   "create ID",
		Short: "Create a model",
		Long: `Create a model: an empty DuckDB database that mutations fill.
Ids are 1-63 of a-z, 0-9, _ and -, starting with a letter or digit.`,
		Example: "  teatree model create sales\n  teatree model create sales --allow-new-columns --snapshot-interval 5s --keep 10",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec.Id = args[0]
			interval, _ := cmd.Flags().GetDuration("snapshot-interval")
			snap.IntervalMs = interval.Milliseconds()
			spec.Snapshot = &snap
			out, err := clientOf(cmd).CreateModel(cmd.Context(), &spec)
			if err != nil {
				return err
			}
			return emit(cmd, out)
		},
	}
	create.Flags().StringSliceVar(&spec.Capabilities, "capabilities", nil, "capabilities the model's db-manager needs (default duckdb); size:small, size:medium, size:large or size:xlarge runs it only on nodes of that size class or larger (teatree serve node --size)")
	create.Flags().BoolVar(&spec.AllowNewColumns, "allow-new-columns", false, "let appends add columns the table does not have")
	create.Flags().Duration("snapshot-interval", time.Second, "least time between two versions while there are changes")
	create.Flags().Int64Var(&snap.EveryMutations, "snapshot-every", 10000, "publish a version after this many mutations")
	create.Flags().Int32Var(&snap.Keep, "keep", 3, "versions to keep")
	list := &cobra.Command{
		Use: "list", Short: "List models", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := clientOf(cmd).ListModels(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-24s %-10s %8s %10s %8s\n", "MODEL", "OWNER", "VERSION", "LAST_SEQ", "LAG")
			for _, m := range out.GetModels() {
				fmt.Fprintf(w, "%-24s %-10s %8d %10d %8d\n", m.GetSpec().GetId(), or(m.GetOwner(), "-"), m.GetSpec().GetVersion(), m.GetLastSeq(), m.GetLag())
			}
			return nil
		},
	}
	show := &cobra.Command{
		Use: "show ID", Short: "Show a model: spec, owner, version and lag", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientOf(cmd).GetModel(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return emit(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Delete a model, its log and its snapshots", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientOf(cmd).DeleteModel(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, show, del, moveCmd())
	return cmd
}

func moveCmd() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "move ID --to NODE",
		Short: "Move a model to another node by hand",
		Long: `Move a model to node NODE (its --node-id). The node that runs the model
finishes the batch it is applying, publishes a version of everything it
applied and gives the model's lease up; the dispatcher then grants the
lease to NODE, whose db-manager restores that version and goes on with the
requests that came meanwhile: none is lost or applied twice. The command
returns once NODE holds the lease, and prints {"model","from","to","epoch"}.

NODE must heartbeat, have the capabilities and at least the size class the
model was created with (teatree model show ID), and a free slot. A node
that does not hand the model over within 30s has its lease taken back, as
when a node dies. Moving a model to the node it is on does nothing; a
model that runs nowhere is simply placed on NODE.`,
		Example: "  teatree model move sales --to worker-2",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("move %s: say where to with --to NODE (a node's --node-id)", args[0])
			}
			out, err := clientOf(cmd).Move(cmd.Context(), args[0], to)
			if err != nil {
				return fmt.Errorf("move %s to %s: %w", args[0], to, err)
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(out)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "id of the node to move the model to (required)")
	return cmd
}

// contentTypes maps file extensions to the contract's content types.
var contentTypes = map[string]string{
	".csv": subject.ContentCSV, ".ndjson": subject.ContentNDJSON, ".jsonl": subject.ContentNDJSON,
	".json": subject.ContentJSON, ".parquet": subject.ContentParquet,
	".arrow": subject.ContentArrow, ".arrows": subject.ContentArrow,
}

func appendCmd() *cobra.Command {
	var keys []string
	var contentType string
	var opts client.MutateOptions
	cmd := &cobra.Command{
		Use:   "append MODEL TABLE FILE",
		Short: "Append (or upsert) rows from a file",
		Long: `Append the rows of FILE to TABLE; the first append creates the table from
the rows' schema. FILE is CSV with a header, NDJSON, a JSON array of objects,
Parquet or an Arrow IPC stream, told apart by its extension (or
--content-type); "-" reads standard input. With --key, rows whose key exists
replace the old row (upsert).`,
		Example: "  teatree append sales orders orders.csv --wait\n  teatree append sales customers customers.parquet --key id",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = os.Stdin
			if args[2] != "-" {
				f, err := os.Open(args[2])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
				if contentType == "" {
					contentType = contentTypes[strings.ToLower(filepath.Ext(args[2]))]
				}
			}
			if contentType == "" {
				return fmt.Errorf("cannot tell the format of %q: name it .csv, .ndjson, .json, .parquet or .arrow, or pass --content-type", args[2])
			}
			res, err := clientOf(cmd).Append(cmd.Context(), args[0], args[1], in, contentType, keys, opts)
			return emitResult(cmd, res, err)
		},
	}
	cmd.Flags().StringSliceVar(&keys, "key", nil, "key columns: upsert instead of append")
	cmd.Flags().StringVar(&contentType, "content-type", "", "format of FILE (default: from its extension)")
	mutateFlags(cmd, &opts)
	return cmd
}

func sqlCmd() *cobra.Command {
	var params []string
	var opts client.MutateOptions
	cmd := &cobra.Command{
		Use:   "sql MODEL SQL",
		Short: "Run SQL statements as a mutation",
		Long: `Run one or more statements in the model's write transaction, as one
mutation. Parameters bind to $1, $2, ... in every statement; each --param
is parsed as JSON when it can be (42, true, null, "text"), else taken as text.`,
		Example: `  teatree sql sales "delete from orders where amount < \$1" --param 10 --wait`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := &teatreev1.SqlMutation{Sql: args[1]}
			for _, p := range params {
				v := &structpb.Value{}
				if err := v.UnmarshalJSON([]byte(p)); err != nil {
					v = structpb.NewStringValue(p)
				}
				m.Params = append(m.Params, v)
			}
			res, err := clientOf(cmd).SQL(cmd.Context(), args[0], m, opts)
			return emitResult(cmd, res, err)
		},
	}
	cmd.Flags().StringArrayVar(&params, "param", nil, "a parameter value (repeat for $1, $2, ...)")
	mutateFlags(cmd, &opts)
	return cmd
}

func mutateFlags(cmd *cobra.Command, opts *client.MutateOptions) {
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "wait for the terminal notification and print it")
	cmd.Flags().StringVar(&opts.RequestID, "request-id", "", "request id: a retry with the same id is applied at most once")
	addServerFlag(cmd)
}

func requestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "request MODEL ID", Short: "Show a request's terminal notification", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientOf(cmd).Request(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return emit(cmd, out)
		},
	}
	addServerFlag(cmd)
	return cmd
}

func snapshotsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "snapshots MODEL", Short: "List a model's published versions", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientOf(cmd).Snapshots(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-8s %-12s %-30s %12s  %s\n", "VERSION", "APPLIED_SEQ", "CREATED_AT", "BYTES", "TABLES")
			for _, s := range out.GetSnapshots() {
				var tables []string
				for _, t := range s.GetTables() {
					tables = append(tables, fmt.Sprintf("%s(%d)", t.GetName(), t.GetRows()))
				}
				fmt.Fprintf(w, "%-8d %-12d %-30s %12d  %s\n", s.GetVersion(), s.GetAppliedSeq(), s.GetCreatedAt(), s.GetDuckdb().GetBytes(), strings.Join(tables, " "))
			}
			return nil
		},
	}
	addServerFlag(cmd)
	return cmd
}

func clientOf(cmd *cobra.Command) *client.Client {
	s, _ := cmd.Flags().GetString("server")
	return client.New(s, client.WithToken(tokenOf(cmd)), client.WithTransport(transportOf(cmd)))
}

func emitResult(cmd *cobra.Command, res *client.Result, err error) error {
	if err != nil {
		return err
	}
	if res.Status != nil {
		if err := emit(cmd, res.Status); err != nil {
			return err
		}
		if res.Status.GetStatus() == subject.StatusFailed {
			return fmt.Errorf("request %s failed: %s", res.Status.GetRequestId(), res.Status.GetError().GetCode())
		}
		return nil
	}
	return emit(cmd, res.Accepted)
}

func emit(cmd *cobra.Command, m wireMessage) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// wireMessage is any contract message.
type wireMessage = proto.Message
