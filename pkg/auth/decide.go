package auth

import (
	"path"
	"slices"
)

// Can reports whether the principal holds role on model.
func (pr *Principal) Can(role Role, model string) bool {
	for _, g := range pr.Allow {
		if slices.Contains(g.Roles, role) && g.matches(model) {
			return true
		}
	}
	return false
}

// CanAnywhere reports whether the principal holds role on some model, as
// listing models or workers needs.
func (pr *Principal) CanAnywhere(role Role) bool {
	for _, g := range pr.Allow {
		if slices.Contains(g.Roles, role) {
			return true
		}
	}
	return false
}

// CanServe reports whether the principal may serve jobs that need every
// one of capabilities (of any model: work grants cover every model).
func (pr *Principal) CanServe(capabilities []string) bool {
	for _, g := range pr.Allow {
		if slices.Contains(g.Roles, Work) && g.covers(capabilities) {
			return true
		}
	}
	return false
}

// covers reports whether the grant's capabilities include every one of
// capabilities; "*" covers any.
func (g Grant) covers(capabilities []string) bool {
	if slices.Contains(g.Capabilities, "*") {
		return true
	}
	for _, c := range capabilities {
		if !slices.Contains(g.Capabilities, c) {
			return false
		}
	}
	return true
}

func (g Grant) matches(model string) bool {
	for _, glob := range g.Models {
		// The globs were checked at load, and model ids hold no '/'.
		if ok, _ := path.Match(glob, model); ok {
			return true
		}
	}
	return false
}
