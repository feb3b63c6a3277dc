package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func functionCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "function", Short: "Register, list, show and delete a model's functions"}
	addServerFlag(cmd)
	var file, sqlText string
	var params []string
	put := &cobra.Command{
		Use:   "put MODEL NAME (--file DEF.json | --sql SQL [--param NAME:TYPE[:required|=DEFAULT]]...)",
		Short: "Register or replace a function",
		Long: `Register function NAME on MODEL, or replace it. The definition is JSON
(docs/contract.md, "Functions"): from --file ("-" reads standard input), or,
for a SQL function, built from --sql and one --param per parameter:

  NAME:TYPE            an optional parameter (NULL when not passed)
  NAME:TYPE:required   a parameter every call must pass
  NAME:TYPE=DEFAULT    an optional parameter with a default (JSON, else text)

The SQL refers to parameters as $NAME and runs like a sql mutation.
Names are 1-63 of a-z, 0-9 and _, not starting with a digit; types are
DuckDB's (VARCHAR, INTEGER, DOUBLE, DATE, DECIMAL(10,2), VARCHAR[], JSON, ...).
Prints the definition as stored.`,
		Example: `  teatree function put shop restock \
    --sql 'UPDATE stock SET qty = qty + $qty WHERE item = $item' \
    --param item:VARCHAR:required --param qty:INTEGER=1
  teatree function put shop describe --file describe.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			def, err := definition(file, sqlText, params)
			if err != nil {
				return err
			}
			out, err := clientOf(cmd).PutFunction(cmd.Context(), args[0], args[1], def)
			if err != nil {
				return fmt.Errorf("put function %s of %s: %w", args[1], args[0], err)
			}
			return emitJSON(cmd, out)
		},
	}
	put.Flags().StringVar(&file, "file", "", `the definition as JSON ("-": standard input)`)
	put.Flags().StringVar(&sqlText, "sql", "", "a SQL function's statements, with $NAME parameters")
	put.Flags().StringArrayVar(&params, "param", nil, "a parameter of --sql: NAME:TYPE, NAME:TYPE:required or NAME:TYPE=DEFAULT")
	list := &cobra.Command{
		Use: "list MODEL", Short: "List a model's functions", Args: cobra.ExactArgs(1),
		Example: "  teatree function list shop",
		RunE: func(cmd *cobra.Command, args []string) error {
			fs, err := clientOf(cmd).ListFunctions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-24s %-8s %s\n", "NAME", "KIND", "PARAMS")
			for _, f := range fs {
				var ps []string
				for _, p := range f.Params {
					ps = append(ps, p.Name+":"+p.Type)
				}
				fmt.Fprintf(w, "%-24s %-8s %s\n", f.Name, f.Kind, strings.Join(ps, " "))
			}
			return nil
		},
	}
	show := &cobra.Command{
		Use: "show MODEL NAME", Short: "Show a function's definition", Args: cobra.ExactArgs(2),
		Example: "  teatree function show shop restock",
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientOf(cmd).GetFunction(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return emitJSON(cmd, out)
		},
	}
	del := &cobra.Command{
		Use: "delete MODEL NAME", Short: "Delete a function (calls already queued still run)", Args: cobra.ExactArgs(2),
		Example: "  teatree function delete shop restock",
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientOf(cmd).DeleteFunction(cmd.Context(), args[0], args[1])
		},
	}
	cmd.AddCommand(put, list, show, del)
	return cmd
}

// definition is the JSON definition of function put: the file's, or one
// built from --sql and --param.
func definition(file, sqlText string, params []string) ([]byte, error) {
	switch {
	case file != "" && (sqlText != "" || len(params) > 0):
		return nil, fmt.Errorf("give the definition with --file or with --sql and --param, not both")
	case file == "-":
		return io.ReadAll(os.Stdin)
	case file != "":
		return os.ReadFile(file)
	case sqlText == "":
		return nil, fmt.Errorf("give the definition: --file DEF.json, or --sql SQL with --param NAME:TYPE for each $NAME")
	}
	d := function.Definition{Kind: function.KindSQL, SQL: sqlText}
	for _, s := range params {
		p, err := parseParam(s)
		if err != nil {
			return nil, err
		}
		d.Params = append(d.Params, p)
	}
	return json.Marshal(d)
}

// parseParam reads NAME:TYPE, NAME:TYPE:required or NAME:TYPE=DEFAULT.
func parseParam(s string) (function.Param, error) {
	spec, def, hasDefault := strings.Cut(s, "=")
	name, typ, ok := strings.Cut(spec, ":")
	if !ok || name == "" || typ == "" {
		return function.Param{}, fmt.Errorf("--param %q: want NAME:TYPE, NAME:TYPE:required or NAME:TYPE=DEFAULT", s)
	}
	p := function.Param{Name: name, Type: typ}
	if t, ok := strings.CutSuffix(typ, ":required"); ok {
		p.Type, p.Required = t, true
	}
	if hasDefault {
		p.Default = jsonOrText(def)
	}
	return p, nil
}

// jsonOrText is s parsed as JSON when it is JSON (42, true, [1,2],
// "text"), else s itself.
func jsonOrText(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	return v
}

func callCmd() *cobra.Command {
	var argList []string
	var argsJSON string
	var opts client.CallOptions
	cmd := &cobra.Command{
		Use:   "call MODEL NAME [--arg KEY=VALUE]... [--args JSON] [--wait]",
		Short: "Call a function registered on a model",
		Long: `Call function NAME of MODEL. Arguments come from --args (a JSON object)
and from each --arg KEY=VALUE, whose VALUE is read as JSON when it is JSON
(5, true, ["a","b"], "text"), else taken as text. They are checked against
the function's parameters before the call is sent on.

A SQL function is applied like a sql mutation, in order with the model's
other mutations, exactly once. A compute function runs on a worker. The
command prints {"request_id","seq"}; with --wait, the call's terminal
notification: the applied or failed status, or the first page of a compute
call's result.`,
		Example: `  teatree call shop restock --arg item=apple --arg qty=5 --wait
  teatree call shop restock --args '{"item":"pear"}' --request-id restock-pear-1
  teatree call shop describe --arg table=orders --deadline-ms 30000 --wait`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := map[string]any{}
			if argsJSON != "" {
				if err := json.Unmarshal([]byte(argsJSON), &in); err != nil || in == nil {
					return fmt.Errorf("--args %q: want a JSON object", argsJSON)
				}
			}
			for _, a := range argList {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("--arg %q: want KEY=VALUE", a)
				}
				in[k] = jsonOrText(v)
			}
			ans, err := clientOf(cmd).Call(cmd.Context(), args[0], args[1], in, opts)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(string(ans.Body))); err != nil {
				return err
			}
			if ans.Status == subject.StatusFailed {
				return fmt.Errorf("call %s of %s failed", args[1], args[0])
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&argList, "arg", nil, "an argument KEY=VALUE (repeat)")
	cmd.Flags().StringVar(&argsJSON, "args", "", "the arguments as one JSON object")
	cmd.Flags().Int64Var(&opts.DeadlineMS, "deadline-ms", 0, "a compute call's deadline (default: the function's)")
	cmd.Flags().Uint64Var(&opts.MinSeq, "min-seq", 0, "a compute call reads a version that includes this stream sequence")
	mutateFlags(cmd, &opts.MutateOptions)
	return cmd
}

func emitJSON(cmd *cobra.Command, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}
