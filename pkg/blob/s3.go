package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// S3Config says where an S3 store keeps its blobs. Credentials come from
// the standard AWS sources (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
// ~/.aws/credentials, a role), as config.LoadDefaultConfig finds them.
type S3Config struct {
	Bucket string
	// Prefix is the folder inside the bucket that holds every key; empty
	// for the bucket's root.
	Prefix string
	// Endpoint is the base URL of an S3-compatible server; empty for AWS.
	Endpoint string
	// Region overrides AWS_REGION and the shared config files. A custom
	// Endpoint with no region anywhere gets us-east-1, which most
	// S3-compatible servers accept.
	Region string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY, as most S3-compatible servers need.
	PathStyle bool
	// Credentials, when set, replace the standard AWS sources (for tests
	// and programs that embed teatree).
	Credentials aws.CredentialsProvider
}

// S3 is a blob store in an S3 bucket. Each PUT is atomic per object, so a
// reader sees a whole blob or none, as with Dir. Large bodies go up as
// multipart uploads.
type S3 struct {
	client *s3.Client
	upload *transfermanager.Client
	bucket string
	prefix string // "" or a clean folder without a trailing slash
}

// NewS3 returns a store in the bucket and prefix of cfg. It makes no
// request: a wrong bucket or credentials show on first use.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 blob store: no bucket")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := checkKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 blob store prefix: %w", err)
		}
	}
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 blob store: load AWS config: %w", err)
	}
	if awsCfg.Region == "" && cfg.Endpoint != "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return &S3{client: client, upload: transfermanager.New(client), bucket: cfg.Bucket, prefix: prefix}, nil
}

// String names the store as an s3:// URL, for logs.
func (s *S3) String() string { return "s3://" + path.Join(s.bucket, s.prefix) }

// checkKey accepts the keys Dir accepts: clean, relative, slash-separated.
func checkKey(key string) error {
	clean := path.Clean(key)
	if key == "" || key == "." || clean != key || strings.HasPrefix(key, "/") || strings.HasPrefix(key, "../") || key == ".." {
		return fmt.Errorf("blob key %q: not a clean relative key", key)
	}
	return nil
}

// objectKey is key inside the bucket, below the store's prefix.
func (s *S3) objectKey(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if s.prefix == "" {
		return key, nil
	}
	return s.prefix + "/" + key, nil
}

// Put writes r under key and returns the bytes written. A body larger
// than one part goes up as a multipart upload, which S3 shows only once
// it is complete.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return 0, err
	}
	cr := &countingReader{r: r}
	if _, err := s.upload.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(k), Body: cr,
	}); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, s.wrap(err))
	}
	return cr.n, nil
}

// PutFile uploads the local file at src under key, then removes src.
func (s *S3) PutFile(ctx context.Context, key, src string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if _, err := s.upload.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(k), Body: f, ContentLength: aws.Int64(st.Size()),
	}); err != nil {
		return fmt.Errorf("put %s: %w", key, s.wrap(err))
	}
	f.Close()
	if err := os.Remove(src); err != nil {
		return fmt.Errorf("put %s: remove source: %w", key, err)
	}
	return nil
}

// Link copies the blob at from to to inside the bucket (CopyObject, so
// the bytes never leave S3). S3 copies up to 5 GiB in one request.
func (s *S3) Link(ctx context.Context, from, to string) error {
	src, err := s.objectKey(from)
	if err != nil {
		return err
	}
	dst, err := s.objectKey(to)
	if err != nil {
		return err
	}
	if _, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:     aws.String(s.bucket),
		Key:        aws.String(dst),
		CopySource: aws.String(copySource(s.bucket, src)),
	}); err != nil {
		return fmt.Errorf("link %s to %s: %w", from, to, s.wrap(err))
	}
	return nil
}

// copySource is bucket/key with each path segment URL-escaped, as
// CopyObject's x-amz-copy-source header wants.
func copySource(bucket, key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return bucket + "/" + strings.Join(parts, "/")
}

// Get reads the whole blob at key.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, s.wrap(err))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

// wrap turns S3's "no such key" answers into ErrNotFound, keeping the
// original error in the chain, and names the bucket in the others. A
// missing bucket is a setup error, not a missing blob.
func (s *S3) wrap(err error) error {
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	if code == "NoSuchBucket" {
		return fmt.Errorf("bucket %s does not exist (check --blobs): %w", s.bucket, err)
	}
	var resp *awshttp.ResponseError
	if code == "NoSuchKey" || code == "NotFound" || (errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("bucket %s: %w", s.bucket, err)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
