package subject_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		header string
		want   []string // nil: refused
	}{
		{"id", []string{"id"}},
		{"id,region", []string{"id", "region"}},
		{" id , region ", []string{"id", "region"}},
		{"Order Id", []string{"Order Id"}},
		{"", nil},
		{" ", nil},
		{"id,,region", nil},
		{"id,", nil},
		{",id", nil},
		{`i"d`, nil},
		{"i\x00d", nil},
	} {
		keys, err := subject.ParseKey(c.header)
		if c.want != nil {
			require.NoError(t, err, "%q", c.header)
			require.Equal(t, c.want, keys, "%q", c.header)
			continue
		}
		require.Error(t, err, "%q", c.header)
		require.Nil(t, keys, "%q", c.header)
		var ae *apierr.Error
		require.True(t, errors.As(err, &ae), "%q: %v", c.header, err)
		require.Equal(t, apierr.InvalidArgument, ae.Code, "%q", c.header)
	}
}
