package function

import (
	"context"
	"errors"
	"sort"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// CheckArgs checks a call's arguments against d and returns them with
// every declared parameter present: the argument, its default, or nil.
// An argument that is not declared, a required one that is missing, or
// one whose value does not cast to its type (DuckDB decides) is
// invalid_argument naming the parameter.
func CheckArgs(d *Definition, args map[string]any) (map[string]any, error) {
	declared := make(map[string]Param, len(d.Params))
	for _, p := range d.Params {
		declared[p.Name] = p
	}
	var unknown []string
	for name := range args {
		if _, ok := declared[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, apierr.Errorf(apierr.InvalidArgument, "function %s has no parameter %q", d.Name, unknown[0])
	}
	out := make(map[string]any, len(d.Params))
	for _, p := range d.Params {
		v, ok := args[p.Name]
		switch {
		case ok && v != nil:
			if err := castable(context.Background(), p.Type, v); err != nil {
				return nil, argError(d, p, err)
			}
			out[p.Name] = v
		case p.Required:
			return nil, apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q (%s) is required", d.Name, p.Name, p.Type)
		default:
			out[p.Name] = p.Default
		}
	}
	return out, nil
}

// argError names the parameter in a cast's failure; a failure of the
// checker itself passes unchanged.
func argError(d *Definition, p Param, err error) error {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		return err
	}
	return apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q (%s): %s", d.Name, p.Name, p.Type, ae.Message)
}
