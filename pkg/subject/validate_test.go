package subject_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// idCase is one id and whether the contract's rule (CONTRACT.md, "Names")
// accepts it.
type idCase struct {
	id    string
	valid bool
}

// checkIDs runs validate over cases; a rejection must be invalid_argument.
func checkIDs(t *testing.T, validate func(string) error, cases []idCase) {
	t.Helper()
	for _, c := range cases {
		err := validate(c.id)
		if c.valid {
			require.NoError(t, err, "%q", c.id)
			continue
		}
		require.Error(t, err, "%q", c.id)
		var ae *apierr.Error
		require.True(t, errors.As(err, &ae), "%q: %v", c.id, err)
		require.Equal(t, apierr.InvalidArgument, ae.Code, "%q", c.id)
	}
}

func TestValidateModel(t *testing.T) {
	t.Parallel()
	checkIDs(t, subject.ValidateModel, []idCase{
		{"sales", true},
		{"a", true},
		{"0", true},
		{"9lives", true},
		{"a-b_c", true},
		{"a" + strings.Repeat("z", 62), true}, // 63 characters
		{"", false},
		{"a" + strings.Repeat("z", 63), false}, // 64 characters
		{"-a", false},
		{"_a", false},
		{"Sales", false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"café", false},
		{"sales\n", false},
		{"..", false},
	})
}

func TestValidateRequest(t *testing.T) {
	t.Parallel()
	checkIDs(t, subject.ValidateRequest, []idCase{
		{"r1", true},
		{"R", true},
		{"-", true},
		{"_Req-1_x", true},
		{"0123456789abcdefABCDEF", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"r1\n", false},
	})
}

func TestValidateTable(t *testing.T) {
	t.Parallel()
	checkIDs(t, subject.ValidateTable, []idCase{
		{"orders", true},
		{"_private", true},
		{"_t", true},
		{"_t_x", true},
		{"t_tt", true},
		{"a1", true},
		{"a" + strings.Repeat("b", 62), true}, // 63 characters
		{"", false},
		{"a" + strings.Repeat("b", 63), false}, // 64 characters
		{"_tt", false},
		{"_tt_requests", false},
		{"_ttx", false},
		{"1orders", false},
		{"Orders", false},
		{"a-b", false},
		{"a.b", false},
		{"a b", false},
		{"a\"b", false},
		{"orders\n", false},
	})
}

func TestValidateCapability(t *testing.T) {
	t.Parallel()
	checkIDs(t, subject.ValidateCapability, []idCase{
		{"duckdb", true},
		{"gpu", true},
		{"size:large", true},
		{"gpu-a100_80g", true},
		{"0x", true},
		{"a" + strings.Repeat(":", 62), true}, // 63 characters
		{"", false},
		{"a" + strings.Repeat("b", 63), false}, // 64 characters
		{":gpu", false},
		{"-gpu", false},
		{"_gpu", false},
		{"GPU", false},
		{"a.b", false},
		{"a*", false},
		{"a>", false},
		{"a b", false},
		{"a/b", false},
	})
}
