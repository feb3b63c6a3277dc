// Package sizeclass holds the node size classes of the original design,
// the pod classes a model can ask for with the capability size:CLASS. A
// node of a class serves the models that ask for that class or a smaller
// one; the dispatcher prefers the smallest class that fits.
package sizeclass

import (
	"fmt"
	"slices"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// Prefix starts every size capability: size:small, size:large.
const Prefix = "size:"

// Class is one size class: the CPUs and memory of a node of that class.
type Class struct {
	Name    string
	Threads int
	Memory  int64 // bytes
}

// Classes are the size classes, smallest first.
var Classes = []Class{
	{Name: "small", Threads: 2, Memory: 2 << 30},
	{Name: "medium", Threads: 4, Memory: 4 << 30},
	{Name: "large", Threads: 8, Memory: 16 << 30},
	{Name: "xlarge", Threads: 16, Memory: 64 << 30},
}

// Names lists the class names, smallest first.
func Names() []string {
	names := make([]string, len(Classes))
	for i, c := range Classes {
		names[i] = c.Name
	}
	return names
}

// Lookup returns the class named name; invalid_argument for an unknown one.
func Lookup(name string) (Class, error) {
	i := rank(name)
	if i < 0 {
		return Class{}, apierr.New(apierr.InvalidArgument, fmt.Sprintf("size class %q: want one of %s", name, strings.Join(Names(), ", ")))
	}
	return Classes[i], nil
}

// Capability is the capability a node of class name advertises.
func Capability(name string) string { return Prefix + name }

// Validate checks the size capabilities among capabilities: each names a
// known class, and there is at most one.
func Validate(capabilities []string) error {
	found := ""
	for _, c := range capabilities {
		name, ok := strings.CutPrefix(c, Prefix)
		if !ok {
			continue
		}
		if _, err := Lookup(name); err != nil {
			return apierr.New(apierr.InvalidArgument, fmt.Sprintf("capability %q: size class %q: want one of %s", c, name, strings.Join(Names(), ", ")))
		}
		if found != "" && found != c {
			return apierr.New(apierr.InvalidArgument, fmt.Sprintf("capabilities %q and %q: at most one size class", found, c))
		}
		found = c
	}
	return nil
}

// Rank is the rank of the size class among capabilities (0 for small, 3
// for xlarge), or -1 when they name none or an unknown one.
func Rank(capabilities []string) int {
	for _, c := range capabilities {
		if name, ok := strings.CutPrefix(c, Prefix); ok {
			return rank(name)
		}
	}
	return -1
}

func rank(name string) int {
	return slices.IndexFunc(Classes, func(c Class) bool { return c.Name == name })
}

// Covers reports whether a node with capabilities have serves a model that
// needs the capabilities needs: every capability but the size class as
// is, and a size class at least the one the model asks for (a node with
// no class serves only models that ask for none).
func Covers(have, needs []string) bool {
	for _, n := range needs {
		if strings.HasPrefix(n, Prefix) {
			if want := rank(strings.TrimPrefix(n, Prefix)); want < 0 || Rank(have) < want {
				return false
			}
			continue
		}
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}
