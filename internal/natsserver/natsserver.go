// Package natsserver runs a real nats-server as a child process, for
// tests of what only a separately started server shows, such as the auth
// callout. The version is the one go.mod pins, built once per machine from
// the module cache.
package natsserver

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/modbin"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// Process is one running nats-server.
type Process struct {
	// URL is the client URL the server listens on.
	URL string
	// Logs are the server's output.
	Logs *natstest.LogBuffer
}

// Start writes config (nats-server's configuration format, without a
// ports_file_dir, and listening on port -1 of 127.0.0.1) and runs a server
// of it, and waits until it listens. The server is killed in t.Cleanup,
// and its output printed if t failed.
func Start(t testing.TB, config string) *Process {
	t.Helper()
	bin, err := Binary()
	require.NoError(t, err, "build nats-server (set NATS_SERVER_BIN to use a built one)")
	dir := t.TempDir()
	ports := filepath.Join(dir, "ports")
	require.NoError(t, os.Mkdir(ports, 0o755))
	conf := filepath.Join(dir, "nats.conf")
	config = fmt.Sprintf("ports_file_dir: %q\n%s", ports, config)
	require.NoError(t, os.WriteFile(conf, []byte(config), 0o600))

	p := &Process{Logs: &natstest.LogBuffer{}}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = p.Logs, p.Logs
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	// The log says why it exited.
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // it may have exited already
		<-exited
		if t.Failed() {
			t.Logf("nats-server log:\n%s\nconfiguration:\n%s", p.Logs, config)
		}
	})
	require.Eventually(t, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		p.URL = readPorts(ports)
		return p.URL != ""
	}, 60*time.Second, 20*time.Millisecond, "nats-server did not listen; log:\n%s", p.Logs)
	select {
	case <-exited:
		t.Fatalf("nats-server exited; log:\n%s\nconfiguration:\n%s", p.Logs, config)
	default:
	}
	return p
}

// readPorts returns the client URL of the ports file in dir, or "" while
// there is none.
func readPorts(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
	if len(files) == 0 {
		return ""
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		return ""
	}
	var ports struct {
		Nats []string `json:"nats"`
	}
	if json.Unmarshal(data, &ports) != nil || len(ports.Nats) == 0 {
		return ""
	}
	return ports.Nats[0]
}

// Binary returns NATS_SERVER_BIN or a nats-server built from the version
// go.mod pins. The build is kept in the user's cache directory under its
// version, so it happens once per machine and version, not per run.
var Binary = modbin.Binary("NATS_SERVER_BIN", natsServerModule, natsServerModule)

const natsServerModule = "github.com/nats-io/nats-server/v2"
