package function

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
)

// Bind returns d's SQL with each $name rewritten to a typed, numbered
// parameter (CAST($k AS type), k the parameter's place in d.Params), and
// the values to bind to $1, $2, ...: args as CheckArgs returned them.
func (d *Definition) Bind(args map[string]any) (string, []any, error) {
	values := make([]any, len(d.Params))
	for i, p := range d.Params {
		if err := typeShape(p.Type); err != nil {
			return "", nil, apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q: %s", d.Name, p.Name, message(err))
		}
		v, err := bindValue(p.Type, args[p.Name])
		if err != nil {
			return "", nil, apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q (%s): %s", d.Name, p.Name, p.Type, message(err))
		}
		values[i] = v
	}
	return d.typedSQL(), values, nil
}

// typedSQL is d's SQL with each declared $name rewritten to its typed,
// numbered parameter; undeclared names are left as they are.
func (d *Definition) typedSQL() string {
	index := make(map[string]int, len(d.Params))
	for i, p := range d.Params {
		index[p.Name] = i
	}
	return sqlstmt.Named(d.SQL, func(name string) string {
		i, ok := index[name]
		if !ok {
			return "$" + name
		}
		return placeholder(d.Params[i].Type, i+1)
	})
}

// bindValue is the value bound for v, a JSON value, to a parameter of
// type typ: JSON text for JSON and list types, else the scalar itself,
// whole numbers as integers (so that 5 is "5" as VARCHAR, not "5.0").
func bindValue(typ string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if isJSON(typ) || isList(typ) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, apierr.Errorf(apierr.InvalidArgument, "value is not JSON: %v", err)
		}
		return string(b), nil
	}
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) <= 1<<53 {
			return int64(x), nil
		}
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		return x.String(), nil
	case int, int32, int64:
		return x, nil
	default:
		return nil, apierr.Errorf(apierr.InvalidArgument, "value %s does not cast to %s", shortJSON(v), typ)
	}
}

func shortJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

// message is an error's message without its code.
func message(err error) string {
	if _, msg := apierr.From(err); msg != "" {
		return msg
	}
	return err.Error()
}
