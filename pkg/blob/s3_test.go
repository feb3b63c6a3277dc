package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/s3test"
	"github.com/teatree-dev/teatree/pkg/blob"
)

// TestS3Layout looks behind the store: keys live below the prefix, and a
// large file goes up in parts.
func TestS3Layout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)
	s := srv.Store(t, "tenant")
	src := filepath.Join(t.TempDir(), "model.duckdb")
	require.NoError(t, os.WriteFile(src, make([]byte, multipartSize), 0o644))
	require.NoError(t, s.PutFile(ctx, "models/m/v1/model.duckdb", src))

	head, err := srv.Client().HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(srv.Bucket), Key: aws.String("tenant/models/m/v1/model.duckdb"),
	})
	require.NoError(t, err)
	require.EqualValues(t, multipartSize, aws.ToInt64(head.ContentLength))
	require.True(t, strings.Contains(aws.ToString(head.ETag), "-"), "a multipart upload's ETag ends in -<parts>: %s", aws.ToString(head.ETag))

	// Another prefix in the same bucket is another store.
	names, err := srv.Store(t, "other").List(ctx, "models")
	require.NoError(t, err)
	require.Empty(t, names)
}

// TestS3MissingBucket: a wrong bucket says so, rather than looking empty.
func TestS3MissingBucket(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	cfg, err := blob.ParseS3URL(srv.URL("p"))
	require.NoError(t, err)
	cfg.Bucket = "no-such-bucket"
	cfg.Credentials = credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, "")
	s, err := blob.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	_, err = s.List(context.Background(), "models")
	require.ErrorContains(t, err, "bucket no-such-bucket does not exist")
	_, err = s.Put(context.Background(), "models/x", strings.NewReader("x"))
	require.ErrorContains(t, err, "bucket no-such-bucket does not exist")
}
