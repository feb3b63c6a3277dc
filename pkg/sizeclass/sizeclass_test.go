package sizeclass_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
)

func TestCovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		have, needs []string
		want        bool
	}{
		{[]string{"duckdb", "size:large"}, []string{"duckdb", "size:medium"}, true},
		{[]string{"duckdb", "size:large"}, []string{"duckdb", "size:large"}, true},
		{[]string{"duckdb", "size:small"}, []string{"duckdb", "size:medium"}, false},
		{[]string{"duckdb"}, []string{"duckdb", "size:small"}, false},
		{[]string{"duckdb", "size:xlarge"}, []string{"duckdb"}, true},
		{[]string{"size:xlarge"}, []string{"duckdb"}, false},
		{[]string{"duckdb", "size:xlarge"}, []string{"size:huge"}, false},
	} {
		require.Equal(t, tc.want, sizeclass.Covers(tc.have, tc.needs), "%v covers %v", tc.have, tc.needs)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, sizeclass.Validate([]string{"duckdb", "size:medium"}))
	require.NoError(t, sizeclass.Validate([]string{"duckdb"}))
	for _, caps := range [][]string{{"size:huge"}, {"size:small", "size:large"}, {"size:"}} {
		err := sizeclass.Validate(caps)
		var ae *apierr.Error
		require.ErrorAs(t, err, &ae, "%v", caps)
		require.Equal(t, apierr.InvalidArgument, ae.Code)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	c, err := sizeclass.Lookup("large")
	require.NoError(t, err)
	require.Equal(t, sizeclass.Class{Name: "large", Threads: 8, Memory: 16 << 30}, c)
	_, err = sizeclass.Lookup("tiny")
	require.ErrorContains(t, err, "small, medium, large, xlarge")
	require.Equal(t, 2, sizeclass.Rank([]string{"duckdb", "size:large"}))
	require.Equal(t, -1, sizeclass.Rank([]string{"duckdb"}))
}
