package dbmanager

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// writeTables writes or links each user table's Parquet file and counts
// its rows, reading the staged state through the export connection: the
// model's own DuckDB instance, not a new one per version.
func (s *snapshotter) writeTables(ctx context.Context, st *staged, version uint64, prev *teatreev1.Manifest) ([]*teatreev1.TableManifest, error) {
	dctx := noInterrupt(ctx)
	p := s.p
	db := st.export
	names, err := userTables(dctx, db)
	if err != nil {
		return nil, err
	}
	prevTables := map[string]*teatreev1.TableManifest{}
	for _, t := range prev.GetTables() {
		prevTables[t.GetName()] = t
	}
	var out []*teatreev1.TableManifest
	for _, name := range names {
		tm := &teatreev1.TableManifest{Name: name}
		if err := db.QueryRowContext(dctx, "SELECT count(*) FROM main."+quoteIdent(name)).Scan(&tm.Rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		out = append(out, tm)
		if subject.ValidateTable(name) != nil {
			// A name made by SQL that is no safe file name gets no Parquet.
			continue
		}
		file := blob.ParquetFile(name)
		key := blob.Key(p.model, version, file)
		if old, ok := prevTables[name]; ok && old.GetParquet() != nil && st.tables != nil && !st.tables[name] {
			if err := p.blobs.Link(ctx, blob.Key(p.model, prev.GetVersion(), file), key); err != nil {
				return nil, err
			}
			tm.Parquet = old.GetParquet()
			continue
		}
		local := st.path + "." + file
		if _, err := db.ExecContext(dctx, "COPY main."+quoteIdent(name)+" TO "+quoteString(local)+" (FORMAT parquet)"); err != nil {
			return nil, fmt.Errorf("write parquet of %s: %w", name, err)
		}
		if tm.Parquet, err = fileRef(local, file); err != nil {
			return nil, err
		}
		if err := p.blobs.PutFile(ctx, key, local); err != nil {
			os.Remove(local)
			return nil, err
		}
	}
	return out, nil
}

// userTables lists the model's own tables, without teatree's bookkeeping.
func userTables(ctx context.Context, db *sql.Conn) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
		AND NOT starts_with(table_name, ?) ORDER BY table_name`, subject.ReservedPrefix)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
