package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func watchCmd() *cobra.Command {
	var fromSeq uint64
	var since string
	cmd := &cobra.Command{
		Use:   "watch MODEL",
		Short: "Print a model's notifications as they arrive, after replaying its history",
		Long: `Print the model's notifications (request outcomes, new versions, result
pages): first those kept in history, then live ones, with no gap and no
duplicate. Each line starts with the notification's stream sequence; if the
connection drops, watch resumes right after the last one it printed.
Ctrl-C stops it.`,
		Example: "  teatree watch sales\n  teatree watch sales --since 10m\n  teatree watch sales --from-seq 1042",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server, _ := cmd.Flags().GetString("server")
			q := url.Values{}
			if fromSeq > 0 {
				q.Set("from_seq", strconv.FormatUint(fromSeq, 10))
			}
			if since != "" {
				q.Set("since", since)
			}
			u := strings.TrimRight(server, "/") + "/v1/models/" + url.PathEscape(args[0]) + "/events?" + q.Encode()
			var lastID string
			for {
				err := follow(cmd, u, &lastID)
				if cmd.Context().Err() != nil {
					return nil
				}
				if lastID == "" {
					return err // never connected: say why
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "watch: %v; resuming after %s\n", err, lastID)
				time.Sleep(time.Second)
			}
		},
	}
	cmd.Flags().Uint64Var(&fromSeq, "from-seq", 0, "start at this stream sequence")
	cmd.Flags().StringVar(&since, "since", "", "start this long ago (10m) or at this RFC 3339 time")
	addServerFlag(cmd)
	return cmd
}

// follow reads the event stream and prints each event, remembering the id
// of the last one in lastID.
func follow(cmd *cobra.Command, u string, lastID *string) error {
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	if t := tokenOf(cmd); t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := (&http.Client{Transport: transportOf(cmd)}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		sc := bufio.NewScanner(resp.Body)
		sc.Scan()
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, sc.Text())
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, kind string
	var data []string
	out := cmd.OutOrStdout()
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" && kind != "":
			fmt.Fprintf(out, "%s %s %s\n", id, kind, strings.Join(data, "\n"))
			*lastID, kind, data = id, "", nil
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[6:])
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the server closed the stream")
}
