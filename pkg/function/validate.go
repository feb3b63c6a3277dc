package function

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/readguard"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
	"github.com/teatree-dev/teatree/pkg/statements"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Validate checks d, with its Name set, against every rule of the
// contract's "Functions": invalid_argument naming the field (and the
// parameter) for the first rule it breaks. Anything else it returns is a
// failure of the checker itself.
func Validate(ctx context.Context, d *Definition) error {
	if err := subject.ValidateTable(d.Name); err != nil {
		return field("name", err)
	}
	if err := validateParams(ctx, d.Params); err != nil {
		return err
	}
	switch d.Kind {
	case KindSQL:
		return validateSQL(ctx, d)
	case KindCompute:
		return validateCompute(d)
	default:
		return apierr.Errorf(apierr.InvalidArgument, "kind %q: want %s or %s", d.Kind, KindSQL, KindCompute)
	}
}

// field names the field whose check failed in err's message; an error that
// is not a request error (the checker failed) passes unchanged.
func field(name string, err error) error {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		return err
	}
	return apierr.Errorf(apierr.InvalidArgument, "%s: %s", name, ae.Message)
}

func validateParams(ctx context.Context, params []Param) error {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		at := fmt.Sprintf("params[%d]", i)
		if err := subject.ValidateTable(p.Name); err != nil {
			return field(at+".name", err)
		}
		at = fmt.Sprintf("params[%d] (%s)", i, p.Name)
		if seen[p.Name] {
			return apierr.Errorf(apierr.InvalidArgument, "%s: the name is declared twice", at)
		}
		seen[p.Name] = true
		if err := checkType(ctx, p.Type); err != nil {
			return field(at+".type", err)
		}
		if p.Default == nil {
			continue
		}
		if p.Required {
			return apierr.Errorf(apierr.InvalidArgument, "%s: a required parameter takes no default", at)
		}
		if err := castable(ctx, p.Type, p.Default); err != nil {
			return field(at+".default", err)
		}
	}
	return nil
}

func validateSQL(ctx context.Context, d *Definition) error {
	switch {
	case len(d.Capabilities) > 0:
		return notFor("capabilities", KindSQL)
	case d.Handler != "":
		return notFor("handler", KindSQL)
	case len(d.Reads) > 0:
		return notFor("reads", KindSQL)
	case d.Output != nil:
		return notFor("output", KindSQL)
	case d.DeadlineMS != 0:
		return notFor("deadline_ms", KindSQL)
	case d.MaxAttempts != 0:
		return notFor("max_attempts", KindSQL)
	case strings.TrimSpace(d.SQL) == "":
		return apierr.New(apierr.InvalidArgument, "sql: a sql function needs its statements")
	}
	if err := statements.CheckReserved(d.SQL); err != nil {
		return field("sql", err)
	}
	if err := readguard.CheckWrite(d.SQL); err != nil {
		return field("sql", err)
	}
	used := map[string]bool{}
	sqlstmt.Named(d.SQL, func(name string) string {
		used[name] = true
		return ""
	})
	for name := range used {
		if !slices.ContainsFunc(d.Params, func(p Param) bool { return p.Name == name }) {
			return apierr.Errorf(apierr.InvalidArgument, "sql: $%s is not a declared parameter", name)
		}
	}
	for _, p := range d.Params {
		if !used[p.Name] {
			return apierr.Errorf(apierr.InvalidArgument, "params (%s): the sql never uses $%s", p.Name, p.Name)
		}
	}
	stmts, err := statements.Split(d.typedSQL())
	if err != nil {
		return field("sql", err)
	}
	if len(stmts) == 0 {
		return apierr.New(apierr.InvalidArgument, "sql: no statement")
	}
	for _, s := range stmts {
		if err := checkStatement(ctx, s.Text); err != nil {
			return field("sql", err)
		}
	}
	return nil
}

// checkStatement checks that DuckDB parses text and that a sql mutation
// may run it. The tables it names need not exist here: when DuckDB cannot
// bind it, its first keyword says what it is, and the db-manager checks
// its type again when it runs.
func checkStatement(ctx context.Context, text string) error {
	db, err := checkerDB()
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("function checker: %w", err)
	}
	defer conn.Close()
	var typ duckdb.StmtType
	var bindErr error
	err = conn.Raw(func(dc any) error {
		ps, err := dc.(*duckdb.Conn).PrepareContext(ctx, text)
		if err != nil {
			bindErr = err
			return nil
		}
		defer ps.Close()
		typ, err = ps.(*duckdb.Stmt).StatementType()
		return err
	})
	if err != nil {
		return fmt.Errorf("function checker: %w", err)
	}
	if bindErr == nil {
		return statementRule(statements.CheckMutation(typ, text))
	}
	var de *duckdb.Error
	if errors.As(bindErr, &de) && de.Type == duckdb.ErrorTypeParser {
		return apierr.Errorf(apierr.InvalidArgument, "statement %.60q does not parse: %s", text, duckMessage(bindErr))
	}
	return statementRule(statements.CheckMutation(keywordType(text), text))
}

// statementRule turns a refusal of the mutation rules into the
// invalid_argument a definition gets.
func statementRule(err error) error {
	var ae *apierr.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	return apierr.New(apierr.InvalidArgument, ae.Message)
}

// keywordTypes are the statement types of a statement's first keyword.
var keywordTypes = map[string]duckdb.StmtType{
	"INSERT": duckdb.STATEMENT_TYPE_INSERT,
	"UPDATE": duckdb.STATEMENT_TYPE_UPDATE,
	"DELETE": duckdb.STATEMENT_TYPE_DELETE,
	"MERGE":  statements.StmtTypeMerge,
	"CREATE": duckdb.STATEMENT_TYPE_CREATE,
	"ALTER":  duckdb.STATEMENT_TYPE_ALTER,
	"DROP":   duckdb.STATEMENT_TYPE_DROP,
	// WITH may lead any of them; the db-manager refuses a bare query.
	"WITH":   duckdb.STATEMENT_TYPE_INSERT,
	"SELECT": duckdb.STATEMENT_TYPE_SELECT,
	"FROM":   duckdb.STATEMENT_TYPE_SELECT,
	"VALUES": duckdb.STATEMENT_TYPE_SELECT,
	"TABLE":  duckdb.STATEMENT_TYPE_SELECT,
	"PRAGMA": duckdb.STATEMENT_TYPE_PRAGMA,
}

// keywordType is the type of a statement by its first keyword; invalid
// (refused) for any keyword not listed.
func keywordType(text string) duckdb.StmtType {
	for {
		text = strings.TrimLeft(text, " \t\r\n\f\v(")
		switch {
		case strings.HasPrefix(text, "--"):
			_, text, _ = strings.Cut(text, "\n")
		case strings.HasPrefix(text, "/*"):
			_, text, _ = strings.Cut(text, "*/")
		default:
			word := strings.ToUpper(text[:identEndOf(text)])
			if t, ok := keywordTypes[word]; ok {
				return t
			}
			return duckdb.STATEMENT_TYPE_INVALID
		}
	}
}

func identEndOf(s string) int {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return i
		}
	}
	return len(s)
}

func validateCompute(d *Definition) error {
	if d.SQL != "" {
		return notFor("sql", KindCompute)
	}
	if n := len(d.Capabilities); n == 0 || n > MaxCapabilities {
		return apierr.Errorf(apierr.InvalidArgument, "capabilities: want 1 to %d, got %d", MaxCapabilities, n)
	}
	for i, c := range d.Capabilities {
		at := fmt.Sprintf("capabilities[%d]", i)
		if err := subject.ValidateCapability(c); err != nil {
			return field(at, err)
		}
		if c == "duckdb" || strings.HasPrefix(c, "size:") {
			return apierr.Errorf(apierr.InvalidArgument, "%s: %q is reserved for teatree's own nodes", at, c)
		}
		if slices.Contains(d.Capabilities[:i], c) {
			return apierr.Errorf(apierr.InvalidArgument, "%s: %q is listed twice", at, c)
		}
	}
	if d.Handler == "" {
		return apierr.New(apierr.InvalidArgument, "handler: a compute function needs the handler its workers serve")
	}
	if err := subject.ValidateCapability(d.Handler); err != nil {
		return field("handler", err)
	}
	for i, m := range d.Reads {
		if err := subject.ValidateModel(m); err != nil {
			return field(fmt.Sprintf("reads[%d]", i), err)
		}
	}
	if o := d.Output; o != nil {
		if err := subject.ValidateTable(o.Table); err != nil {
			return field("output.table", err)
		}
		if o.Mode != ModeAppend && o.Mode != ModeReplace {
			return apierr.Errorf(apierr.InvalidArgument, "output.mode %q: want %s or %s", o.Mode, ModeAppend, ModeReplace)
		}
	}
	if d.DeadlineMS < 0 {
		return apierr.Errorf(apierr.InvalidArgument, "deadline_ms %d: want 0 (the default, %s) or more", d.DeadlineMS, DefaultDeadline)
	}
	if d.MaxAttempts < 0 || d.MaxAttempts > MaxAttemptsLimit {
		return apierr.Errorf(apierr.InvalidArgument, "max_attempts %d: want 1 to %d (0 or none: %d)", d.MaxAttempts, MaxAttemptsLimit, DefaultMaxAttempts)
	}
	return nil
}

func notFor(name, kind string) error {
	return apierr.Errorf(apierr.InvalidArgument, "%s: not a field of a %s function", name, kind)
}
