package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// workersCmd lists the live compute workers.
func workersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the live compute workers",
		Long: `List the compute workers whose heartbeat is live in tt_compute: what
each can run (capabilities and handlers), its slots and the calls it runs
(<model>.<call id>).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ws, err := clientOf(cmd).Workers(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%-24s %-20s %-24s %5s  %s\n", "ID", "CAPABILITIES", "HANDLERS", "SLOTS", "RUNNING")
			for _, hb := range ws {
				fmt.Fprintf(w, "%-24s %-20s %-24s %5d  %s\n", hb.ID, or(strings.Join(hb.Capabilities, ","), "-"),
					or(strings.Join(hb.Handlers, ","), "-"), hb.Slots, or(strings.Join(hb.Running, ","), "-"))
			}
			return nil
		},
	}
	addServerFlag(cmd)
	return cmd
}

// callsCmd shows and cancels compute calls.
func callsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "calls", Short: "Show and cancel compute calls"}
	addServerFlag(cmd)
	show := &cobra.Command{
		Use: "show MODEL ID", Short: "Show a compute call's record: state, worker, attempts, result", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := clientOf(cmd).CallRecord(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(rec)
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel MODEL ID",
		Short: "Cancel a compute call that has not ended",
		Long: `Cancel a compute call: a queued job never runs, a running one is told to
stop, and the call ends failed with cancelled. Prints the call's record as
it was when cancelled; a call that has ended is left as it is.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, err := clientOf(cmd).CancelCall(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(rec)
		},
	}
	cmd.AddCommand(show, cancel)
	return cmd
}
