package function

import (
	"sort"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// CheckArgs checks a call's arguments against d and returns them with
// every declared parameter present: the argument, its default, or nil.
// An argument that is not declared, or a required one that is missing,
// is invalid_argument naming the parameter.
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
			out[p.Name] = v
		case p.Required:
			return nil, apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q (%s) is required", d.Name, p.Name, p.Type)
		default:
			out[p.Name] = p.Default
		}
	}
	return out, nil
}
