package subject

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// The contract's id rules (CONTRACT.md, "Names"). An id that passes is safe
// as a subject token, a path segment and, quoted, an SQL identifier.
var (
	modelRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	requestRE    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	tableRE      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	capabilityRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_:-]{0,62}$`)
	// A principal's name is also the last token of the subjects it
	// publishes mutations and calls on.
	principalRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// ReservedPrefix starts every name teatree keeps for itself inside a model.
const ReservedPrefix = "_tt"

// ValidateModel checks a model id.
func ValidateModel(id string) error {
	if !modelRE.MatchString(id) {
		return apierr.New(apierr.InvalidArgument, fmt.Sprintf("model id %q: want 1-63 of a-z, 0-9, _ and -, starting with a letter or digit", id))
	}
	return nil
}

// ValidateTable checks a table name.
func ValidateTable(name string) error {
	if !tableRE.MatchString(name) || strings.HasPrefix(name, ReservedPrefix) {
		return apierr.New(apierr.InvalidArgument, fmt.Sprintf("table name %q: want 1-63 of a-z, 0-9 and _, not starting with a digit or %q", name, ReservedPrefix))
	}
	return nil
}

// ValidateCapability checks a capability string.
func ValidateCapability(c string) error {
	if !capabilityRE.MatchString(c) {
		return apierr.New(apierr.InvalidArgument, fmt.Sprintf("capability %q: want 1-63 of a-z, 0-9, _, : and -, starting with a letter or digit", c))
	}
	return nil
}

// ValidatePrincipal checks a principal's name.
func ValidatePrincipal(name string) error {
	if !principalRE.MatchString(name) {
		return apierr.New(apierr.InvalidArgument, fmt.Sprintf("principal %q: want 1-64 of A-Z, a-z, 0-9, _ and -", name))
	}
	return nil
}
