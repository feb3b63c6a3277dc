package builtin

import (
	"context"
	"fmt"

	"github.com/teatree-dev/teatree/pkg/worker"
)

// summaryColumns are the statistics describe answers per column, those of
// DuckDB's SUMMARIZE.
const summaryColumns = `column_name, column_type, min, max, approx_unique, avg, std, q25, q50, q75, count, null_percentage`

// Describe answers per-column statistics of a table (args: table), one row
// a column, as DuckDB's SUMMARIZE computes them. It summarizes one column
// at a time and reports progress before each.
func Describe(ctx context.Context, in *worker.Input) (worker.Output, error) {
	table, err := tableArg(ctx, in)
	if err != nil {
		return worker.Output{}, err
	}
	rows, err := in.DB.QueryContext(ctx, `SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' AND table_name = ? ORDER BY column_index`,
		worker.InputSchema, table)
	if err != nil {
		return worker.Output{}, fmt.Errorf("columns of %s: %w", table, err)
	}
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return worker.Output{}, err
		}
		cols = append(cols, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return worker.Output{}, err
	}
	// The statistics gather in a table of the job's own in-memory
	// database, which every connection of its DB sees.
	const stats = "memory.main._describe"
	if _, err := in.DB.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE %s AS SELECT 0 AS _pos, %s FROM (SUMMARIZE SELECT 1) LIMIT 0`, stats, summaryColumns)); err != nil {
		return worker.Output{}, fmt.Errorf("statistics table: %w", err)
	}
	for i, c := range cols {
		in.Progress(float64(i)/float64(len(cols)), fmt.Sprintf("%d of %d columns", i, len(cols)))
		q := fmt.Sprintf(`INSERT INTO %s SELECT %d, %s FROM (SUMMARIZE SELECT %s FROM %s)`, stats, i, summaryColumns, quote(c), quote(table))
		if _, err := in.DB.ExecContext(ctx, q); err != nil {
			return worker.Output{}, fmt.Errorf("summarize column %s of %s: %w", c, table, err)
		}
	}
	rd, err := in.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s ORDER BY _pos`, summaryColumns, stats))
	if err != nil {
		return worker.Output{}, err
	}
	return worker.Arrow(rd), nil
}
