// Package e2e drives the built teatree binary as separate processes, the
// way a client app in any language would: plain nats.go on the contract's
// subjects and plain net/http, no teatree SDK.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

var binary string

func TestMain(m *testing.M) {
	binary = os.Getenv("TEATREE_BIN")
	if binary == "" {
		dir, err := os.MkdirTemp("", "teatree-e2e")
		if err != nil {
			panic(err)
		}
		binary = filepath.Join(dir, "teatree")
		build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", binary, "../../services/cmd/teatree")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: cannot build teatree:", err)
			os.Exit(1)
		}
		defer os.RemoveAll(dir)
	}
	os.Exit(m.Run())
}

// server is a `teatree up` process.
type server struct {
	t        *testing.T
	data     string
	httpAddr string
	natsAddr string
	cmd      *exec.Cmd
	logs     *natstest.LogBuffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs `teatree up` on free ports with its data in a fresh
// directory, and waits until it is ready.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, data: t.TempDir(), httpAddr: freeAddr(t), natsAddr: freeAddr(t), logs: &natstest.LogBuffer{}}
	s.start(extra...)
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("teatree logs:\n%s", s.logs.String())
		}
	})
	return s
}

func (s *server) start(extra ...string) {
	s.t.Helper()
	args := append([]string{"up", "--data", s.data, "--http", s.httpAddr, "--nats", s.natsAddr, "--lease-ttl", "3s"}, extra...)
	s.cmd = exec.Command(binary, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	require.NoError(s.t, s.cmd.Start())
	require.Eventually(s.t, func() bool {
		resp, err := http.Get(s.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "teatree up did not become ready; logs:\n%s", s.logs.String())
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.kill()
	}
}

// stopCleanly sends SIGTERM and requires a clean exit.
func (s *server) stopCleanly() {
	s.t.Helper()
	require.NoError(s.t, s.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(s.t, err, "teatree did not exit cleanly on SIGTERM")
	case <-time.After(30 * time.Second):
		s.kill()
		s.t.Fatal("teatree did not stop within 30s of SIGTERM")
	}
}

func (s *server) url(path string) string { return "http://" + s.httpAddr + path }

func (s *server) natsURL() string { return "nats://" + s.natsAddr }

// connect returns a plain NATS connection, closed at the end of the test.
func (s *server) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(s.natsURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// do sends an HTTP request and returns the status and body.
func do(t *testing.T, method, url, contentType string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b, resp.Header
}

func createModel(t *testing.T, s *server, spec string) {
	t.Helper()
	status, body, _ := do(t, http.MethodPost, s.url("/v1/models"), "application/json", []byte(spec))
	require.Equal(t, http.StatusCreated, status, string(body))
}

// publish publishes a mutation with plain nats.go and returns its sequence.
func publish(t *testing.T, js jetstream.JetStream, subj, id string, headers map[string]string, body []byte) uint64 {
	t.Helper()
	msg := nats.NewMsg(subj)
	msg.Data = body
	if id != "" {
		msg.Header.Set("Nats-Msg-Id", id)
	}
	for k, v := range headers {
		msg.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, msg)
	require.NoError(t, err)
	return ack.Sequence
}

// status is the JSON body of a status notification.
type status struct {
	RequestID    string `json:"request_id"`
	Model        string `json:"model"`
	Op           string `json:"op"`
	Status       string `json:"status"`
	Seq          uint64 `json:"seq"`
	RowsAffected *int64 `json:"rows_affected"`
	AppliedAt    string `json:"applied_at"`
	Error        *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// waitNotification reads the terminal notification of one request from the
// TT_NTF stream, waiting for it to appear.
func waitNotification(t *testing.T, js jetstream.JetStream, model, id string) (status, nats.Header) {
	t.Helper()
	stream, err := js.Stream(context.Background(), "TT_NTF")
	require.NoError(t, err)
	var msg *jetstream.RawStreamMsg
	require.Eventually(t, func() bool {
		msg, err = stream.GetLastMsgForSubject(context.Background(), "tt.ntf."+model+".req."+id)
		return err == nil
	}, 60*time.Second, 20*time.Millisecond, "no notification for %s/%s", model, id)
	var st status
	require.NoError(t, json.Unmarshal(msg.Data, &st), string(msg.Data))
	return st, msg.Header
}

func (s status) String() string {
	b, _ := json.Marshal(s)
	return string(b)
}

func requireError(t *testing.T, st status, code string) {
	t.Helper()
	require.Equal(t, "failed", st.Status, "want failed with %s, got %+v", code, st)
	require.NotNil(t, st.Error)
	require.Equal(t, code, st.Error.Code, st.Error.Message)
	require.NotEmpty(t, strings.TrimSpace(st.Error.Message))
}
