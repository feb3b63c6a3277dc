package gateway

import (
	"testing"

	"github.com/teatree-dev/teatree/internal/s3test"
)

// startS3 is start with the snapshots in a bucket of a real S3 server.
func startS3(t *testing.T) *testEnv {
	t.Helper()
	store := s3test.Start(t).Store(t, "teatree")
	return start(t, func(_ *Config, d *Deps) { d.Blobs = store })
}

// TestSnapshotsOnS3 lists and downloads versions (Range, ETag and
// If-None-Match) from S3 as from a directory: versions the catalog does
// not show stay hidden although their folders are listed.
func TestSnapshotsOnS3(t *testing.T) {
	t.Parallel()
	t.Run("list", func(t *testing.T) {
		t.Parallel()
		checkListSnapshots(t, startS3(t))
	})
	t.Run("download", func(t *testing.T) {
		t.Parallel()
		checkDownloadSnapshot(t, startS3(t))
	})
}
