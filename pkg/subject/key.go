package subject

import (
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// ParseKey splits an upsert's key columns, the value of the Tt-Key header
// (the gateway's ?key=), into column names. The gateway applies it to refuse
// a bad key at once and the db-manager to read the key it applies, so both
// hold the same rule: names separated by commas, spaces around them ignored,
// none empty and none holding a double quote or NUL (the db-manager quotes
// them as SQL identifiers). A refusal is invalid_argument.
func ParseKey(header string) ([]string, error) {
	if header == "" {
		return nil, apierr.Errorf(apierr.InvalidArgument, "upsert needs the %s header: the key columns, comma separated", HeaderKey)
	}
	var keys []string
	for _, k := range strings.Split(header, ",") {
		k = strings.TrimSpace(k)
		if k == "" || strings.ContainsAny(k, "\"\x00") {
			return nil, apierr.Errorf(apierr.InvalidArgument, "key %q (%s, or key= over HTTP): want column names separated by commas, none empty or quoted", header, HeaderKey)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
