package statements

import (
	"regexp"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Statement types a sql mutation may run. A bare SELECT or PRAGMA changes
// nothing (a query is the place for it): refused as a mistake. Everything
// else (transaction control, ATTACH, SET, LOAD, COPY, CALL, CHECKPOINT,
// EXPORT, ...) could break the batch's transaction or reach outside the
// model: refused as not permitted.
var allowedStatements = map[duckdb.StmtType]bool{
	duckdb.STATEMENT_TYPE_INSERT:      true,
	duckdb.STATEMENT_TYPE_UPDATE:      true,
	duckdb.STATEMENT_TYPE_DELETE:      true,
	duckdb.STATEMENT_TYPE_CREATE:      true,
	duckdb.STATEMENT_TYPE_CREATE_FUNC: true,
	duckdb.STATEMENT_TYPE_ALTER:       true,
	duckdb.STATEMENT_TYPE_DROP:        true,
	StmtTypeMerge:                     true,
}

// StmtTypeMerge is DuckDB's MERGE INTO, which duckdb-go has no name for.
const StmtTypeMerge = duckdb.StmtType(30)

// CheckMutation checks that a statement of type typ may run in a
// mutation: invalid_argument for one that changes nothing,
// permission_denied for one that is not allowed.
func CheckMutation(typ duckdb.StmtType, text string) error {
	if typ == duckdb.STATEMENT_TYPE_SELECT || typ == duckdb.STATEMENT_TYPE_PRAGMA {
		return apierr.Errorf(apierr.InvalidArgument, "statement %.60q changes nothing; use a query", text)
	}
	if !allowedStatements[typ] {
		return apierr.Errorf(apierr.PermissionDenied, "statement not allowed in a mutation: %.60q (only INSERT, UPDATE, DELETE, MERGE, CREATE, ALTER and DROP)", text)
	}
	return nil
}

// reservedName finds a name starting with _tt (teatree's bookkeeping) at
// the start of an identifier, quoted or not, in any case.
var reservedName = regexp.MustCompile(`(?i)(^|[^a-z0-9_$])` + subject.ReservedPrefix)

// CheckReserved refuses SQL that names anything starting with _tt.
func CheckReserved(text string) error {
	if reservedName.MatchString(text) {
		return apierr.Errorf(apierr.PermissionDenied, "names starting with %s are reserved for teatree", subject.ReservedPrefix)
	}
	return nil
}
