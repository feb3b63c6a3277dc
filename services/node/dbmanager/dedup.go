package dbmanager

import (
	"context"
	"fmt"
)

// dropDuplicates removes requests whose id the model has already seen: a
// retry that came after JetStream's duplicate window, or twice in one batch.
func (w *writer) dropDuplicates(ctx context.Context, reqs []*request) ([]*request, error) {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.id
	}
	rows, err := w.st.conn.QueryContext(ctx, seenQuery, ids)
	if err != nil {
		return nil, nodeError{fmt.Errorf("look up request ids: %w", err)}
	}
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nodeError{err}
		}
		seen[id] = true
	}
	if err := rows.Close(); err != nil {
		return nil, nodeError{err}
	}
	todo := reqs[:0:0]
	for _, r := range reqs {
		if seen[r.id] {
			w.m.log.InfoContext(ctx, "dropped duplicate request", "request_id", r.id, "seq", r.seq)
			continue
		}
		seen[r.id] = true
		todo = append(todo, r)
	}
	return todo, nil
}

// seenQuery finds which of a list of request ids _tt_requests has; DuckDB
// answers = ANY of a list from the index on request_id.
const seenQuery = "SELECT request_id FROM _tt_requests WHERE request_id = ANY(?)"
