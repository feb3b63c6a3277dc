package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func queryCmd() *cobra.Command {
	var format string
	var params []string
	q := &teatreev1.Query{}
	cmd := &cobra.Command{
		Use:   "query MODEL SQL",
		Short: "Query the newest (or a given) version of a model",
		Long: `Run one read statement on a published version of a model, read-only and
sandboxed, and print the result as a table, or raw as csv, json, ndjson or
arrow (an Arrow IPC stream per page). Every page of a large result is
fetched and printed in order. --min-seq waits for a version that includes a
mutation: pass the seq a mutation's acknowledgement gave you.`,
		Example: `  teatree query sales "select region, sum(amount) from orders group by 1"
  teatree query sales "select * from orders where id = $1" --param 42 --format json
  teatree query sales "select count(*) from orders" --min-seq 1042`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q.Sql = args[1]
			for _, p := range params {
				v := &structpb.Value{}
				if err := v.UnmarshalJSON([]byte(p)); err != nil {
					v = structpb.NewStringValue(p)
				}
				q.Params = append(q.Params, v)
			}
			table := format == "table"
			q.Format = format
			if table {
				q.Format = "csv"
			}
			c := clientOf(cmd)
			page, err := c.Query(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var tw *tabwriter.Writer
			if table {
				tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				out = tw
			}
			for n := 1; ; n++ {
				if table {
					if err := printCSVPage(out, page.Body, n == 1); err != nil {
						return err
					}
				} else if _, err := out.Write(page.Body); err != nil {
					return err
				}
				if n >= page.Pages {
					break
				}
				if page, err = c.Page(cmd.Context(), args[0], page.ResultID, n+1); err != nil {
					return err
				}
			}
			if tw != nil {
				if err := tw.Flush(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "(%d rows, version %d)\n", page.Rows, page.Version)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, csv, json, ndjson or arrow")
	cmd.Flags().StringArrayVar(&params, "param", nil, "a parameter value (repeat for $1, $2, ...)")
	cmd.Flags().Uint64Var(&q.MinSeq, "min-seq", 0, "answer from a version that includes this stream sequence")
	cmd.Flags().Uint64Var(&q.Version, "version", 0, "answer from this exact version (0: the newest)")
	cmd.Flags().Int64Var(&q.PageRows, "page-rows", 0, "rows per page (default: the server's, 10000)")
	cmd.Flags().Int64Var(&q.TimeoutMs, "timeout-ms", 0, "deadline of the query (default: the server's)")
	addServerFlag(cmd)
	return cmd
}

// printCSVPage prints a CSV page as tab-separated cells; every page repeats
// the header, which only the first prints.
func printCSVPage(w io.Writer, page []byte, header bool) error {
	rows, err := csv.NewReader(bytes.NewReader(page)).ReadAll()
	if err != nil {
		return fmt.Errorf("read result page: %w", err)
	}
	for i, row := range rows {
		if i == 0 && !header {
			continue
		}
		for j, cell := range row {
			if j > 0 {
				io.WriteString(w, "\t")
			}
			io.WriteString(w, cell)
		}
		io.WriteString(w, "\n")
	}
	return nil
}
