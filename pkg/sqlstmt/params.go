package sqlstmt

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math"

	"google.golang.org/protobuf/types/known/structpb"
)

// Value converts a JSON parameter. Whole numbers that a float64 holds
// exactly bind as BIGINT, other numbers as DOUBLE; lists and objects bind
// as their JSON text.
func Value(v *structpb.Value) any {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return nil
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
			return int64(f)
		}
		return f
	default:
		b, _ := json.Marshal(v.AsInterface())
		return string(b)
	}
}

// Args returns the arguments of one statement: its $k bound to the request
// parameter s.Params[k-1], or, for ? placeholders, the parameters in order.
// An error names a parameter the request does not have.
func Args(s Statement, params []*structpb.Value) ([]driver.NamedValue, error) {
	if s.Params == nil {
		args := make([]driver.NamedValue, len(params))
		for i, p := range params {
			args[i] = driver.NamedValue{Ordinal: i + 1, Value: Value(p)}
		}
		return args, nil
	}
	args := make([]driver.NamedValue, len(s.Params))
	for k, p := range s.Params {
		if p < 1 || p > len(params) {
			return nil, fmt.Errorf("statement %.60q uses parameter $%d, the request has %d", s.Text, p, len(params))
		}
		args[k] = driver.NamedValue{Ordinal: k + 1, Value: Value(params[p-1])}
	}
	return args, nil
}
