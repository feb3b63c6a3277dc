package blob_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

func TestParseS3URL(t *testing.T) {
	t.Parallel()
	cfg, err := blob.ParseS3URL("s3://bucket/some/prefix/?endpoint=http://127.0.0.1:7070&region=eu-west-1&path_style=true")
	require.NoError(t, err)
	require.Equal(t, blob.S3Config{Bucket: "bucket", Prefix: "some/prefix", Endpoint: "http://127.0.0.1:7070", Region: "eu-west-1", PathStyle: true}, cfg)

	cfg, err = blob.ParseS3URL("s3://bucket")
	require.NoError(t, err)
	require.Equal(t, blob.S3Config{Bucket: "bucket"}, cfg, "every parameter optional: AWS itself")

	for spec, want := range map[string]string{
		"s3:///prefix":                     "no bucket",
		"s3://b/p?endpoint=127.0.0.1:7070": "want http://HOST:PORT",
		"s3://b/p?path_style=yes":          "want true or false",
		"s3://b/p?regoin=x":                `unknown parameter "regoin"`,
		"s3://b/p?region=a&region=b":       "given 2 times",
		"s3://b/a/../p":                    "not a clean relative key",
		"s3://key:secret@b/p":              "credentials come from the AWS environment",
		"gs://b/p":                         `scheme "gs" is not supported`,
		"s3://b/p?endpoint=ftp://h:1":      "want http://HOST:PORT",
	} {
		_, err := blob.ParseS3URL(spec)
		require.ErrorContains(t, err, want, spec)
	}
}

func TestOpenStoreDirOrS3(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := blob.OpenStore(ctx, dir)
	require.NoError(t, err)
	require.IsType(t, &blob.Dir{}, s)

	s, err = blob.OpenStore(ctx, "s3://bucket/prefix?endpoint=http://127.0.0.1:1&region=us-east-1")
	require.NoError(t, err, "no request is made at open")
	require.IsType(t, &blob.S3{}, s)

	_, err = blob.OpenStore(ctx, "")
	require.ErrorContains(t, err, "give a directory or s3://")
	_, err = blob.OpenStore(ctx, "http://bucket/prefix")
	require.ErrorContains(t, err, "not supported")
	_, err = blob.OpenStore(ctx, "s3:/bucket/prefix")
	require.ErrorContains(t, err, "want s3://BUCKET/PREFIX")
}
