package dbmanager

import (
	"context"
	"fmt"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// record writes each request's outcome and the new sequences in the
// batch's transaction. The outcomes go through DuckDB's appender, which
// appends in the connection's open transaction: binding nine parameters
// per request to an INSERT cost more than applying small requests.
func (w *writer) record(ctx context.Context, reqs []*request, results []applyResult, failed []error, now time.Time, lastSeq uint64) error {
	err := w.st.withDriverConn(func(c *duckdb.Conn) error {
		a, err := duckdb.NewAppender(c, "", "", "_tt_requests")
		if err != nil {
			return err
		}
		for i, r := range reqs {
			if failed[i] != nil {
				code, msg := apierr.From(failed[i])
				err = a.AppendRow(r.id, r.seq, r.op, subject.StatusFailed, nil, string(code), msg, now, nullable(r.principal))
			} else {
				err = a.AppendRow(r.id, r.seq, r.op, subject.StatusApplied, results[i].rows, nil, nil, now, nullable(r.principal))
			}
			if err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
	if err != nil {
		return err
	}
	if w.requests+len(reqs) > 2*w.m.cfg.RecentRequests {
		// Keep the newest RecentRequests outcomes; the trim runs in the
		// transaction so the table never loses an outcome it needs.
		if _, err := w.st.conn.ExecContext(ctx, `DELETE FROM _tt_requests WHERE seq < (
			SELECT min(seq) FROM (SELECT seq FROM _tt_requests ORDER BY seq DESC LIMIT ?))`, w.m.cfg.RecentRequests); err != nil {
			return err
		}
		w.requests = w.m.cfg.RecentRequests - len(reqs)
	}
	_, err = w.st.conn.ExecContext(ctx, "UPDATE _tt_state SET applied_seq = ?, events_seq = ?, epoch = ?", lastSeq, w.published, w.m.cfg.Epoch)
	return err
}

func (w *writer) countRequests(ctx context.Context) error {
	if err := w.st.conn.QueryRowContext(ctx, "SELECT count(*) FROM _tt_requests").Scan(&w.requests); err != nil {
		return fmt.Errorf("count requests: %w", err)
	}
	return nil
}

func (w *writer) statuses(reqs []*request, results []applyResult, failed []error, at time.Time) []*teatreev1.RequestStatus {
	out := make([]*teatreev1.RequestStatus, len(reqs))
	for i, r := range reqs {
		if failed[i] != nil {
			out[i] = outcome.Failed(w.m.cfg.Model, r.id, r.op, r.seq, at, failed[i])
		} else {
			out[i] = outcome.Applied(w.m.cfg.Model, r.id, r.op, r.seq, at, results[i].rows)
		}
		out[i].Principal = r.principal
	}
	return out
}

func (w *writer) noteChange(res applyResult) {
	w.changed++
	if res.allTables {
		w.allTables = true
		return
	}
	if w.tables == nil {
		w.tables = map[string]bool{}
	}
	for _, t := range res.tables {
		w.tables[t] = true
	}
}
