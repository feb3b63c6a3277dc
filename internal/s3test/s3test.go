// Package s3test runs a real S3 server for tests: versitygw with its
// POSIX backend, pinned in tools/go.mod, built from the module cache and
// started on a loopback address of the test's own (package loopback).
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// The server's one account, and the region every client names.
const (
	AccessKey = "teatree-test"
	SecretKey = "teatree-test-secret"
	Region    = "us-east-1"
)

// Server is one versitygw process with one fresh bucket.
type Server struct {
	// Endpoint is the server's base URL, http://127.X.Y.Z:7070.
	Endpoint string
	// Bucket exists and is empty when Start returns.
	Bucket string
	client *s3.Client
}

var buckets atomic.Int32

// Start runs a versitygw process for t, on a loopback address only t uses,
// and creates a bucket in it. The process is killed when t ends, and its
// log is printed if t failed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary(t)
	ip := loopback.IP(t)
	s := &Server{
		Endpoint: "http://" + net.JoinHostPort(ip, loopback.PortS3),
		Bucket:   fmt.Sprintf("tt-%d-%d", os.Getpid(), buckets.Add(1)),
	}
	root := t.TempDir()
	logs := &natstest.LogBuffer{}
	cmd := exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", net.JoinHostPort(ip, loopback.PortS3), "posix", root)
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start(), "start versitygw")
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("versitygw log:\n%s", logs.String())
		}
	})
	s.client = s3.NewFromConfig(aws.Config{Region: Region, Credentials: staticCredentials()}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
	s.waitReady(t, exited)
	_, err := s.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	require.NoError(t, err, "create bucket %s", s.Bucket)
	return s
}

// waitReady lists the buckets until the server answers, for at most 30s.
func (s *Server) waitReady(t testing.TB, exited <-chan struct{}) {
	t.Helper()
	var err error
	for range 300 {
		select {
		case <-exited:
			t.Fatalf("versitygw exited before it was ready")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = s.client.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("versitygw at %s not ready after 30s: %v", s.Endpoint, err)
}

// URL is the --blobs spec of prefix in the bucket.
func (s *Server) URL(prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "path_style": {"true"}}
	return "s3://" + strings.TrimSuffix(s.Bucket+"/"+prefix, "/") + "?" + q.Encode()
}

// Env is what a child process needs to reach the server with URL: the
// credentials and region, and no lookup of EC2 instance metadata.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Store is a blob store on prefix in the bucket, with the test credentials.
func (s *Server) Store(t testing.TB, prefix string) blob.Store {
	t.Helper()
	cfg, err := blob.ParseS3URL(s.URL(prefix))
	require.NoError(t, err)
	cfg.Credentials = staticCredentials()
	st, err := blob.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	return st
}

// Client is an S3 client of the server, for looking behind a store.
func (s *Server) Client() *s3.Client { return s.client }

func staticCredentials() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// binary returns VERSITYGW_BIN or a versitygw built from the version
// tools/go.mod pins. The build is kept in the user's cache directory under
// its version, so it happens once per machine and version, not per run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildBin = os.Getenv("VERSITYGW_BIN"); buildBin != "" {
			return
		}
		buildBin, buildErr = build()
	})
	require.NoError(t, buildErr, "build versitygw (set VERSITYGW_BIN to use a built one)")
	return buildBin
}

const versitygwPkg = "github.com/versity/versitygw/cmd/versitygw"

func build() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/versity/versitygw").Output()
	if err != nil {
		return "", fmt.Errorf("find the pinned versitygw version (tools/go.mod, in go.work): %w", exitErr(err))
	}
	version := strings.TrimSpace(string(out))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "teatree")
	bin := filepath.Join(dir, "versitygw-"+version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build beside and rename, so a parallel test binary never runs half a
	// file.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, versitygwPkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s@%s: %w", versitygwPkg, version, err)
	}
	return bin, os.Rename(tmp, bin)
}

func exitErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
