package dbmanager

import (
	"context"
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// applyCall runs a call mutation: the SQL function's statements, as its
// definition stands now, with the arguments bound as typed parameters,
// under the rules of a sql mutation.
func (m *Manager) applyCall(ctx context.Context, st *store, body []byte) (applyResult, error) {
	var c teatreev1.CallMutation
	if err := protojson.Unmarshal(body, &c); err != nil {
		return applyResult{}, apierr.Errorf(apierr.InvalidArgument, "call body: %v", err)
	}
	d, err := m.function(ctx, c.GetFunction())
	if err != nil {
		return applyResult{}, err
	}
	if d.Kind == function.KindCompute {
		return applyResult{}, apierr.Errorf(apierr.InvalidArgument,
			"%s is a compute function: call it on %s or POST /v1/models/%s/calls/%s",
			d.Name, m.cfg.Names.Call(subject.CallIntake, m.cfg.Model), m.cfg.Model, d.Name)
	}
	args, err := function.CheckArgs(d, c.GetArgs().AsMap())
	if err != nil {
		return applyResult{}, requestOrNode(err)
	}
	text, values, err := d.Bind(args)
	if err != nil {
		return applyResult{}, requestOrNode(err)
	}
	params := make([]*structpb.Value, len(values))
	for i, v := range values {
		if params[i], err = structpb.NewValue(v); err != nil {
			return applyResult{}, apierr.Errorf(apierr.InvalidArgument, "function %s: parameter %q: %v", d.Name, d.Params[i].Name, err)
		}
	}
	return runSQL(ctx, st, text, params)
}

// function reads the definition of name from tt_functions: not_found when
// it is not registered; a failure to read it is the node's, retried.
func (m *Manager) function(ctx context.Context, name string) (*function.Definition, error) {
	if m.deps.Functions == nil {
		return nil, apierr.Errorf(apierr.NotFound, "function %q is not registered on model %s", name, m.cfg.Model)
	}
	d, err := function.NewStore(m.deps.Functions).Get(ctx, m.cfg.Model, name)
	if err != nil {
		return nil, requestOrNode(err)
	}
	if d.Name == "" {
		d.Name = name
	}
	return d, nil
}

// requestOrNode keeps a request error and makes anything else the node's.
func requestOrNode(err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	return nodeError{err}
}
