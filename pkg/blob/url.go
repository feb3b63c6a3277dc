package blob

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// URLer hands out URLs of blobs to programs that reach the store
// themselves, as compute workers do: a file:// URL in a directory store, a
// pre-signed HTTP URL in a bucket, valid for ttl.
type URLer interface {
	// ReadURL is a URL that reads the blob at key.
	ReadURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// WriteURL is a URL that writes the blob at key: a file to create, or
	// an HTTP PUT.
	WriteURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

var (
	_ URLer = (*Dir)(nil)
	_ URLer = (*S3)(nil)
)

// ReadURL is file://<absolute path of key>; a file URL does not expire.
func (d *Dir) ReadURL(_ context.Context, key string, _ time.Duration) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}

// WriteURL is file://<absolute path of key>, as ReadURL. It creates the
// folder the file goes in, so a writer only creates the file.
func (d *Dir) WriteURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("write url %s: %w", key, err)
	}
	return d.ReadURL(ctx, key, ttl)
}

// ReadURL is a pre-signed GET of key, valid for ttl.
func (s *S3) ReadURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(s.client).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign get %s: %w", key, err)
	}
	return req.URL, nil
}

// WriteURL is a pre-signed PUT of key, valid for ttl.
func (s *S3) WriteURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	req, err := s3.NewPresignClient(s.client).PresignPutObject(ctx,
		&s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("presign put %s: %w", key, err)
	}
	return req.URL, nil
}
