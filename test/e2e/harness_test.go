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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "teatree-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	binary = os.Getenv("TEATREE_BIN")
	if binary == "" {
		binary = filepath.Join(dir, "teatree")
		if err := goBuild(binary, "-tags", "duckdb_arrow", "../../services/cmd/teatree"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: cannot build teatree:", err)
			return 1
		}
	}
	return m.Run()
}

func goBuild(out string, args ...string) error {
	build := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	return build.Run()
}

// server is a `teatree up` process on its own loopback address.
type server struct {
	*proc
	t        *testing.T
	data     string
	httpAddr string
	natsAddr string
}

// startServer runs `teatree up` with its data in a fresh directory, on an
// address no other test or process uses, and waits until it is ready.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	ip := loopback.IP(t)
	s := &server{t: t, data: t.TempDir(), httpAddr: ip + ":" + portHTTP, natsAddr: ip + ":" + portNATS}
	args := append([]string{"up", "--data", s.data, "--http", s.httpAddr, "--nats", s.natsAddr, "--lease-ttl", "3s"}, extra...)
	s.proc = newProc(t, "teatree up", binary, args, readyTeatree("teatree is up.", "http://"+s.httpAddr))
	s.start()
	return s
}

func (s *server) url(path string) string { return "http://" + s.httpAddr + path }

func (s *server) natsURL() string { return "nats://" + s.natsAddr }

// connect returns a plain NATS connection, closed at the end of the test.
func (s *server) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	return connectNATS(t, s.natsURL())
}

// connectNATS connects like a client that must survive the server going
// away: it reconnects for ever and publishes time out instead of failing.
func connectNATS(t *testing.T, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
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

type urler interface{ url(string) string }

func createModel(t *testing.T, s urler, spec string) {
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
