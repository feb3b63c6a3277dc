package bench

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// teatree is `teatree up` running in this process for one scenario.
type teatree struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	api   *client.Client
	names subject.Names
	data  string
	// logged counts the node's log lines that say a model opened or closed.
	logged logCounts
	stop   func()
}

type stackOptions struct {
	syncAlways  bool
	idleTimeout time.Duration
	// slots is how many models the node runs at once (default 4000).
	slots int
	// cluster, when set, runs the services other than the node against
	// the NATS cluster and blob store of a cluster scenario.
	cluster *clusterEnv
}

func syncName(always bool) string {
	if always {
		return "sync always"
	}
	return "sync interval"
}

// startTeatree starts every service on an embedded NATS server with its
// data in a fresh directory, as `teatree up` does.
func (r *runner) startTeatree(ctx context.Context, name string, o stackOptions) (*teatree, error) {
	data := filepath.Join(r.opt.Work, slug(name))
	slots := o.slots
	if slots == 0 {
		slots = 4000
	}
	logged := newLogCounts(msgManagerStarted, msgEvicted, msgUnloaded)
	cfg := stack.Config{
		Services: stack.AllServices, Data: data, HTTPAddr: "127.0.0.1:0", MaxBody: 256 << 20,
		Embedded: natsboot.ServerConfig{Addr: "127.0.0.1:0", SyncAlways: o.syncAlways},
		Boot:     natsboot.Config{Names: subject.Default()},
		Node:     node.Config{ID: "bench", Capabilities: []string{"duckdb"}, Slots: slots},
		Log:      slog.New(logged.handler(r.log.Handler())).With("stack", name),
	}
	cfg.Manager.IdleTimeout = o.idleTimeout
	if c := o.cluster; c != nil {
		cfg.Services = []string{stack.Gateway, stack.Dispatcher, stack.Notifier}
		cfg.NATSURL, cfg.Blobs = c.natsURL, c.blobs
		cfg.Boot.Replicas, cfg.Boot.LeaseTTL = c.replicas, c.leaseTTL
	}
	ready := make(chan stack.Ready, 1)
	cfg.OnReady = func(rd stack.Ready) { ready <- rd }
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- stack.Run(sctx, cfg) }()
	var rd stack.Ready
	select {
	case rd = <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("teatree did not start: %w", err)
	case <-time.After(time.Minute):
		cancel()
		return nil, fmt.Errorf("teatree not ready after a minute")
	}
	nc, err := nats.Connect(rd.NATSURL, nats.Name("bench"))
	if err != nil {
		cancel()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		cancel()
		return nil, err
	}
	t := &teatree{nc: nc, js: js, api: client.New(rd.HTTPURL), names: cfg.Boot.Names, data: data, logged: logged}
	t.stop = func() {
		nc.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(time.Minute):
			r.log.Warn("teatree did not stop within a minute", "stack", name)
		}
		os.RemoveAll(data)
	}
	return t, nil
}

// createModels creates models through the HTTP API, 16 at a time.
func (t *teatree) createModels(ctx context.Context, specs []*teatreev1.ModelSpec) error {
	return parallel(ctx, 16, len(specs), func(i int) error {
		_, err := t.api.CreateModel(ctx, specs[i])
		return err
	})
}

// blobPath is where the embedded stack keeps a published file.
func (t *teatree) blobPath(model string, version uint64, file string) string {
	return filepath.Join(t.data, "blobs", "models", model, "v"+strconv.FormatUint(version, 10), file)
}

// startJetStream starts a bare embedded JetStream server for a baseline,
// with the same sync setting as the teatree it is compared with.
func (r *runner) startJetStream(name string, syncAlways bool) (*server.Server, *nats.Conn, jetstream.JetStream, func(), error) {
	dir := filepath.Join(r.opt.Work, slug(name)+"-baseline")
	srv, err := natsboot.StartServer(natsboot.ServerConfig{Addr: "127.0.0.1:0", StoreDir: dir, SyncAlways: syncAlways})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("bench-baseline"))
	if err != nil {
		srv.Shutdown()
		return nil, nil, nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, nil, nil, nil, err
	}
	return srv, nc, js, func() {
		nc.Close()
		srv.Shutdown()
		srv.WaitForShutdown()
		os.RemoveAll(dir)
	}, nil
}

// parallel runs f(0..n-1) on k goroutines, stopping at the first error.
func parallel(ctx context.Context, k, n int, f func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, k)
	for range k {
		go func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
feed:
	for i := range n {
		select {
		case next <- i:
		case err := <-errs:
			first = err
			k--
			break feed
		case <-ctx.Done():
			first = ctx.Err()
			break feed
		}
	}
	close(next)
	for range k {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// percentiles of durations, in milliseconds.
func percentiles(d []time.Duration, ps ...float64) []float64 {
	if len(d) == 0 {
		return make([]float64, len(ps))
	}
	s := slices.Clone(d)
	slices.Sort(s)
	out := make([]float64, len(ps))
	for i, p := range ps {
		k := int(p*float64(len(s))+0.999999) - 1
		out[i] = float64(s[max(0, min(k, len(s)-1))]) / float64(time.Millisecond)
	}
	return out
}

// procStatus reads a numeric field of /proc/self/status (kB for sizes).
func procStatus(field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n
		}
	}
	return 0
}

func peakRSSMiB() float64 { return procStatus("VmHWM") / 1024 }
func rssMiB() float64     { return procStatus("VmRSS") / 1024 }
func threads() int        { return int(procStatus("Threads")) }

// settledRSS is the process's resident memory in MiB once the Go heap's
// free pages went back to the system, after two seconds for the node's
// work in flight to end.
func settledRSS() float64 {
	time.Sleep(2 * time.Second)
	debug.FreeOSMemory()
	return rssMiB()
}

// resetPeakRSS starts a new peak (Linux ≥ 4.0; ignored elsewhere).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
