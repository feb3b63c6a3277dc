package bench

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteDocsReplacesOnlyTheLastRun(t *testing.T) {
	rep := &Report{Duration: "1s", Results: []Result{{Scenario: "idle models", Unit: "MiB RSS", Teatree: 1}}}
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	require.NoError(t, os.WriteFile(path, []byte("# Benchmarks\n\nWhy the misses miss.\n\n## Last full run\n\n| old table |\n"), 0o644))
	require.NoError(t, rep.writeDocs(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	page := string(b)
	require.True(t, strings.HasPrefix(page, "# Benchmarks\n\nWhy the misses miss.\n\n## Last full run\n\ndefault run of"), page)
	require.NotContains(t, page, "old table")
	require.Contains(t, page, "| idle models |")
	require.Equal(t, 1, strings.Count(page, "## Last full run"))

	fresh := filepath.Join(t.TempDir(), "new.md")
	require.NoError(t, rep.writeDocs(fresh))
	b, err = os.ReadFile(fresh)
	require.NoError(t, err)
	require.Equal(t, rep.Markdown(), string(b))
}

func TestTargetNeedsExactlyOneNotificationPerRequest(t *testing.T) {
	r := &runner{opt: Options{Progress: io.Discard}, report: &Report{}}
	always := func(Result) bool { return true }
	r.add(Result{Scenario: "a", Notifications: &Notifications{Requests: 2, Notified: 2}}, always)
	r.add(Result{Scenario: "b", Notifications: &Notifications{Requests: 2, Notified: 2, Duplicates: 1}}, always)
	r.add(Result{Scenario: "c", Notifications: &Notifications{Requests: 2, Notified: 1}}, always)
	var met []bool
	for _, res := range r.report.Results {
		met = append(met, *res.Met)
	}
	require.Equal(t, []bool{true, false, false}, met)
}
