// Package s3server runs a real S3 server, versitygw with its POSIX backend,
// as a child process: for tests (package s3test) and for the benchmarks,
// which run outside `go test`. The version is the one tools/go.mod pins,
// built once per machine from the module cache.
package s3server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/teatree-dev/teatree/internal/modbin"
)

// The server's one account, and the region every client names.
const (
	AccessKey = "teatree-test"
	SecretKey = "teatree-test-secret"
	Region    = "us-east-1"
)

// Process is one running versitygw.
type Process struct {
	// Endpoint is the server's base URL, http://HOST:PORT.
	Endpoint string
	client   *s3.Client
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start runs versitygw listening on addr (host:port) with its objects
// under root and its output to log, and waits until it answers, for at
// most 30s. Kill stops it.
func Start(addr, root string, log io.Writer) (*Process, error) {
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("build versitygw (set VERSITYGW_BIN to use a built one): %w", err)
	}
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region, "--port", addr, "posix", root)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	p := &Process{Endpoint: "http://" + addr, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	p.client = s3.NewFromConfig(aws.Config{Region: Region, Credentials: Credentials()}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(p.Endpoint)
		o.UsePathStyle = true
	})
	if err := p.waitReady(); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// waitReady lists the buckets until the server answers, for at most 30s.
func (p *Process) waitReady() error {
	var err error
	for range 300 {
		select {
		case <-p.exited:
			return errors.New("versitygw exited before it was ready")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = p.client.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("versitygw at %s not ready after 30s: %w", p.Endpoint, err)
}

// Kill stops the server and waits until it exited.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// Client is an S3 client of the server, with its credentials.
func (p *Process) Client() *s3.Client { return p.client }

// CreateBucket creates an empty bucket.
func (p *Process) CreateBucket(ctx context.Context, bucket string) error {
	_, err := p.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// URL is the --blobs spec of prefix in bucket.
func (p *Process) URL(bucket, prefix string) string {
	q := url.Values{"endpoint": {p.Endpoint}, "region": {Region}, "path_style": {"true"}}
	return "s3://" + strings.TrimSuffix(bucket+"/"+prefix, "/") + "?" + q.Encode()
}

// Env is what a process needs to reach the server with URL: the
// credentials and region, and no lookup of EC2 instance metadata.
func Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Credentials are the server's account.
func Credentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
}

// Binary returns VERSITYGW_BIN or a versitygw built from the version
// tools/go.mod pins. The build is kept in the user's cache directory under
// its version, so it happens once per machine and version, not per run.
var Binary = modbin.Binary("VERSITYGW_BIN", "github.com/versity/versitygw", versitygwPkg)

const versitygwPkg = "github.com/versity/versitygw/cmd/versitygw"
