package function

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// checker is an in-memory DuckDB of its own that checks types, casts and
// statements. It holds no data and reaches nothing outside itself.
var checker struct {
	once sync.Once
	db   *sql.DB
	err  error
}

func checkerDB() (*sql.DB, error) {
	checker.once.Do(func() {
		c, err := duckdb.NewConnector("?threads=1&enable_external_access=false&lock_configuration=true", nil)
		if err != nil {
			checker.err = fmt.Errorf("open the function checker: %w", err)
			return
		}
		checker.db = sql.OpenDB(c)
	})
	return checker.db, checker.err
}

// typeRE is what a parameter's type may look like before DuckDB is asked
// about it: words (DOUBLE PRECISION), an optional (p) or (p,s), and list
// suffixes. Nothing else reaches SQL.
var typeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*( [A-Za-z][A-Za-z0-9_]*){0,3}( ?\( ?[0-9]{1,3} ?(, ?[0-9]{1,3} ?)?\))?(\[[0-9]{0,6}\])*$`)

// typeShape refuses a type that does not look like one. A definition read
// back from tt_functions is checked again before its types reach SQL:
// anything may have written the bucket.
func typeShape(typ string) error {
	if len(typ) > 100 || !typeRE.MatchString(typ) {
		return apierr.Errorf(apierr.InvalidArgument, "type %q: want a DuckDB type such as VARCHAR, INTEGER, DECIMAL(10,2) or VARCHAR[]", typ)
	}
	return nil
}

// checkType asks DuckDB whether typ is a type.
func checkType(ctx context.Context, typ string) error {
	if err := typeShape(typ); err != nil {
		return err
	}
	db, err := checkerDB()
	if err != nil {
		return err
	}
	var null bool
	if err := db.QueryRowContext(ctx, "SELECT CAST(NULL AS "+typ+") IS NULL").Scan(&null); err != nil {
		return apierr.Errorf(apierr.InvalidArgument, "type %q: %s", typ, duckMessage(err))
	}
	return nil
}

// castable checks that v, bound as Bind binds it, casts to typ (a type
// that checkType accepted).
func castable(ctx context.Context, typ string, v any) error {
	if err := typeShape(typ); err != nil {
		return err
	}
	bound, err := bindValue(typ, v)
	if err != nil {
		return err
	}
	db, err := checkerDB()
	if err != nil {
		return err
	}
	var null bool
	if err := db.QueryRowContext(ctx, "SELECT "+placeholder(typ, 1)+" IS NULL", bound).Scan(&null); err != nil {
		return apierr.Errorf(apierr.InvalidArgument, "value %s does not cast to %s: %s", shortJSON(v), typ, duckMessage(err))
	}
	return nil
}

// isList reports whether typ is a list type (T[] or T[n]).
func isList(typ string) bool { return strings.HasSuffix(typ, "]") }

func isJSON(typ string) bool { return strings.EqualFold(typ, "JSON") }

// placeholder is the expression that stands for parameter $n of type typ.
// Lists come as JSON text and are cast through JSON, which reads quoted
// strings inside them as JSON does.
func placeholder(typ string, n int) string {
	p := "$" + strconv.Itoa(n)
	switch {
	case isJSON(typ):
		return "CAST(" + p + " AS JSON)"
	case isList(typ):
		return "CAST(CAST(" + p + " AS JSON) AS " + typ + ")"
	default:
		return "CAST(" + p + " AS " + typ + ")"
	}
}

func duckMessage(err error) string { return strings.TrimSpace(err.Error()) }
