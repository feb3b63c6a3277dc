// Package function is what a function registered on a model is: its
// definition as the contract's "Functions" describes it, the checks of a
// definition and of a call's arguments, and the tt_functions bucket that
// keeps the definitions.
package function

import (
	"sort"
	"strings"
	"time"
)

// Kinds of function.
const (
	KindSQL     = "sql"
	KindCompute = "compute"
)

// Output modes of a compute function's write-back.
const (
	ModeAppend  = "append"
	ModeReplace = "replace"
)

// Defaults and bounds of a compute function.
const (
	DefaultDeadline    = 60 * time.Second
	DefaultMaxAttempts = 3
	MaxAttemptsLimit   = 10
	// MaxCapabilities bounds the capabilities one function may require,
	// so that a worker binds a bounded number of routes.
	MaxCapabilities = 3
)

// Definition is a function as registered; Model, Name and UpdatedAt are
// set by the server.
type Definition struct {
	Model        string   `json:"model,omitempty"`
	Name         string   `json:"name,omitempty"`
	Kind         string   `json:"kind"`
	SQL          string   `json:"sql,omitempty"`
	Params       []Param  `json:"params,omitempty"`
	Capabilities []string `json:"capabilities,omitempty"`
	Handler      string   `json:"handler,omitempty"`
	Reads        []string `json:"reads,omitempty"`
	Output       *Output  `json:"output,omitempty"`
	DeadlineMS   int64    `json:"deadline_ms,omitempty"`
	MaxAttempts  int      `json:"max_attempts,omitempty"`
	UpdatedAt    string   `json:"updated_at,omitempty"`
}

// Param is one declared parameter.
type Param struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required,omitempty"`
	// Default is a JSON value of Type; nil when none is declared.
	Default any `json:"default,omitempty"`
}

// Output is where a compute function's result is applied.
type Output struct {
	Table string `json:"table"`
	Mode  string `json:"mode"`
}

// Deadline is the function's deadline, or the default.
func (d *Definition) Deadline() time.Duration {
	if d.DeadlineMS > 0 {
		return time.Duration(d.DeadlineMS) * time.Millisecond
	}
	return DefaultDeadline
}

// Attempts is the function's max_attempts, or the default.
func (d *Definition) Attempts() int {
	if d.MaxAttempts > 0 {
		return d.MaxAttempts
	}
	return DefaultMaxAttempts
}

// Route is the token of tt.call.<route>.<model> that a compute function's
// jobs go to: <handler>@<capabilities sorted, joined by +>.
func Route(handler string, capabilities []string) string {
	caps := append([]string(nil), capabilities...)
	sort.Strings(caps)
	return handler + "@" + strings.Join(caps, "+")
}

// Routes are the routes a worker serves: each handler with every
// non-empty set of at most MaxCapabilities of its capabilities.
func Routes(handlers, capabilities []string) []string {
	caps := append([]string(nil), capabilities...)
	sort.Strings(caps)
	var sets [][]string
	var grow func(from int, set []string)
	grow = func(from int, set []string) {
		if len(set) > 0 {
			sets = append(sets, append([]string(nil), set...))
		}
		if len(set) == MaxCapabilities {
			return
		}
		for i := from; i < len(caps); i++ {
			grow(i+1, append(set, caps[i]))
		}
	}
	grow(0, nil)
	var routes []string
	for _, h := range handlers {
		for _, s := range sets {
			routes = append(routes, Route(h, s))
		}
	}
	return routes
}
