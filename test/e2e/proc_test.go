package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/natsserver"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// Every server process gets a loopback address of its own (see package
// loopback) and listens on fixed ports there.
const (
	portNATS  = loopback.PortNATS
	portNATS2 = loopback.PortNATS2
	portRoute = loopback.PortRoute
	portHTTP  = loopback.PortHTTP
)

var binDir string // scratch directory of built binaries, set by TestMain

// proc is one server process, restartable on the same arguments (and so
// the same addresses and directories). Its logs, across restarts, are
// printed when the test fails, or always with E2E_LOGS=1.
type proc struct {
	t     *testing.T
	name  string
	path  string
	args  []string
	logs  *natstest.LogBuffer
	ready func(p *proc) bool
	// env is added to this process's environment (KEY=value).
	env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// newProc registers the cleanup of a process that is not started yet, so a
// test that fails while waiting for readiness still stops it and shows
// its logs.
func newProc(t *testing.T, name, path string, args []string, ready func(*proc) bool) *proc {
	p := &proc{t: t, name: name, path: path, args: args, logs: &natstest.LogBuffer{}, ready: ready}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("logs of %s (%s %s):\n%s", p.name, filepath.Base(p.path), strings.Join(p.args, " "), p.logs.String())
		}
	})
	return p
}

// start runs the process and waits until it is ready; a process that
// exits before that fails the test at once.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(p.logs, "=== %s: start #%d at %s ===\n", p.name, p.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	err := cmd.Start()
	exited := make(chan struct{})
	if err == nil {
		go func() {
			err := cmd.Wait()
			fmt.Fprintf(p.logs, "=== %s: exited at %s: %v ===\n", p.name, time.Now().Format(time.RFC3339Nano), err)
			close(exited)
		}()
	}
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	require.NoError(p.t, err, "start %s", p.name)
	require.Eventually(p.t, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return p.ready(p)
	}, 90*time.Second, 25*time.Millisecond, "%s did not become ready; logs:\n%s", p.name, p.logs.String())
	select {
	case <-exited:
		p.t.Fatalf("%s exited before it was ready; logs:\n%s", p.name, p.logs.String())
	default:
	}
}

func (p *proc) running() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.exited
}

// alive reports whether the process runs.
func (p *proc) alive() bool {
	cmd, exited := p.running()
	if cmd == nil || exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	cmd, _ := p.running()
	require.NoError(p.t, cmd.Process.Signal(sig), "signal %v to %s", sig, p.name)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	cmd, exited := p.running()
	if cmd == nil || cmd.Process == nil || exited == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process dies too, but its parent only hears of it once it runs
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop sends SIGTERM and kills the process if it is still there after 20s.
func (p *proc) stop() {
	cmd, exited := p.running()
	if cmd == nil || cmd.Process == nil || exited == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// terminate sends SIGTERM and waits at most within for the process to
// exit; it says how it went, nil for a clean exit in time.
func (p *proc) terminate(within time.Duration) error {
	cmd, exited := p.running()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	select {
	case <-exited:
		if !cmd.ProcessState.Success() {
			return fmt.Errorf("%s did not exit cleanly on SIGTERM: %v", p.name, cmd.ProcessState)
		}
		return nil
	case <-time.After(within):
		p.kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM", p.name, within)
	}
}

// stopCleanly sends SIGTERM and requires a clean exit within 30s.
func (p *proc) stopCleanly() {
	p.t.Helper()
	require.NoError(p.t, p.terminate(30*time.Second))
}

// readyTeatree waits for the line a teatree process prints once all its
// services are ready (once per start), and for the gateway's /readyz when
// the process runs one.
func readyTeatree(line, httpURL string) func(*proc) bool {
	return func(p *proc) bool {
		if strings.Count(p.logs.String(), line) < p.starts {
			return false
		}
		if httpURL == "" {
			return true
		}
		resp, err := http.Get(httpURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// natsServer is a standalone nats-server process with JetStream and a
// store that survives its restarts.
type natsServer struct {
	*proc
	addr string
}

// natsServerBinary builds nats-server from this module's dependency, once
// per machine (or takes NATS_SERVER_BIN).
func natsServerBinary(t *testing.T) string {
	t.Helper()
	bin, err := natsserver.Binary()
	require.NoError(t, err, "build nats-server")
	return bin
}

// startNATS runs nats-server on its own loopback address with JetStream
// fsyncing every message, as `teatree up --sync always` does.
func startNATS(t *testing.T) *natsServer {
	t.Helper()
	bin := natsServerBinary(t)
	dir := t.TempDir()
	ip := loopback.IP(t)
	n := &natsServer{addr: net.JoinHostPort(ip, portNATS)}
	conf := filepath.Join(dir, "nats.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `server_name: e2e
listen: %q
jetstream {
  store_dir: %q
  sync_interval: always
}
`, n.addr, filepath.Join(dir, "store")), 0o644))
	n.proc = newProc(t, "nats-server", bin, []string{"-c", conf}, func(p *proc) bool {
		return strings.Count(p.logs.String(), "Server is ready") >= p.starts
	})
	n.start()
	return n
}

func (n *natsServer) url() string { return "nats://" + n.addr }
