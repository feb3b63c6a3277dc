// Package s3test runs a real S3 server for tests: versitygw with its
// POSIX backend (package s3server), started on a loopback address of the
// test's own (package loopback).
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/s3server"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// The server's one account, and the region every client names.
const (
	AccessKey = s3server.AccessKey
	SecretKey = s3server.SecretKey
	Region    = s3server.Region
)

// Server is one versitygw process with one fresh bucket.
type Server struct {
	// Endpoint is the server's base URL, http://127.X.Y.Z:7070.
	Endpoint string
	// Bucket exists and is empty when Start returns.
	Bucket string
	proc   *s3server.Process
}

var buckets atomic.Int32

// Start runs a versitygw process for t, on a loopback address only t uses,
// and creates a bucket in it. The process is killed when t ends, and its
// log is printed if t failed.
func Start(t testing.TB) *Server {
	t.Helper()
	ip := loopback.IP(t)
	logs := &natstest.LogBuffer{}
	proc, err := s3server.Start(net.JoinHostPort(ip, loopback.PortS3), t.TempDir(), logs)
	require.NoError(t, err, "versitygw log:\n%s", logs)
	t.Cleanup(func() {
		proc.Kill()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", logs.String())
		}
	})
	s := &Server{Endpoint: proc.Endpoint, Bucket: fmt.Sprintf("tt-%d-%d", os.Getpid(), buckets.Add(1)), proc: proc}
	require.NoError(t, proc.CreateBucket(context.Background(), s.Bucket))
	return s
}

// URL is the --blobs spec of prefix in the bucket.
func (s *Server) URL(prefix string) string { return s.proc.URL(s.Bucket, prefix) }

// Env is what a child process needs to reach the server with URL: the
// credentials and region, and no lookup of EC2 instance metadata.
func (s *Server) Env() []string { return s3server.Env() }

// Store is a blob store on prefix in the bucket, with the test credentials.
func (s *Server) Store(t testing.TB, prefix string) blob.Store {
	t.Helper()
	cfg, err := blob.ParseS3URL(s.URL(prefix))
	require.NoError(t, err)
	cfg.Credentials = s3server.Credentials()
	st, err := blob.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	return st
}

// Client is an S3 client of the server, for looking behind a store.
func (s *Server) Client() *s3.Client { return s.proc.Client() }
