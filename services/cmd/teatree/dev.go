package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/natsboot"
)

func devCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Tools for trying teatree on one machine",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(devClusterCmd())
	return cmd
}

// devClusterPortOffset puts each server's route port beside its client
// port, as nats-server's defaults do (4222 for clients, 6222 for routes).
const devClusterPortOffset = 2000

func devClusterCmd() *cobra.Command {
	var data string
	var port, servers int
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Run a local NATS cluster of three servers, to try teatree on a cluster",
		Long: `Run three NATS servers with JetStream in this process, routed to each other
as a cluster named teatree-dev, on 127.0.0.1: clients on ports --port,
--port+1 and --port+2 (4222, 4223, 4224 by default), routes on the same
ports plus 2000 (6222, 6223, 6224). Each keeps its JetStream files in a
directory of its own under --data (nats-0, nats-1, nats-2) and fsyncs every
message before acknowledging it (sync_interval: always), as a production
cluster should. Ctrl-C stops all three; started again on the same --data
they recover their streams.

Then run teatree's services against it with the seed list it prints and
--replicas 3, so that every stream and bucket lives on all three servers
and survives the loss of any one. The services may start in any order,
before the cluster has elected its leaders: they wait and retry.

To see a server fail, run the three servers as separate nats-server
processes instead (docs/operations.md shows their configuration).`,
		Example: `  teatree dev cluster --data ./teatree-cluster
  teatree dev cluster --port 5222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 1 || port+devClusterPortOffset+servers-1 > 65535 {
				return fmt.Errorf("--port %d: want a port from 1 to %d", port, 65535-devClusterPortOffset-servers+1)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srvs, err := startDevCluster(data, port, servers)
			if err != nil {
				return err
			}
			defer shutdownAll(srvs)
			var urls []string
			for _, s := range srvs {
				urls = append(urls, s.ClientURL())
			}
			seeds := strings.Join(urls, ",")
			fmt.Fprintf(cmd.OutOrStdout(), `A NATS cluster of %[1]d servers is up.
  seeds: %[2]s
  data:  %[3]s

Try, each in a terminal of its own:
  teatree serve gateway dispatcher notifier --nats %[2]s --replicas 3 --data ./tt-gw --blobs ./tt-blobs
  teatree serve node --nats %[2]s --replicas 3 --data ./tt-node-1 --node-id node-1 --blobs ./tt-blobs
  teatree model create sales
  curl -X POST --data-binary $'id,amount\n1,9.5\n2,3' -H 'Content-Type: text/csv' 'http://127.0.0.1:8080/v1/models/sales/tables/orders/rows?wait=applied'

Ctrl-C stops the cluster.
`, servers, seeds, data)
			<-ctx.Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "./teatree-cluster", "directory of the servers' JetStream files, one subdirectory each")
	cmd.Flags().IntVar(&port, "port", 4222, "client port of the first server; the others take the next ones, and routes these plus 2000")
	cmd.Flags().IntVar(&servers, "servers", 3, "how many servers: 3 tolerates the loss of one")
	return cmd
}

// startDevCluster starts the servers at once, each routed to all of them:
// the ports are known, so no server has to start first.
func startDevCluster(data string, port, n int) ([]*server.Server, error) {
	if n < 1 {
		return nil, fmt.Errorf("--servers %d: want at least 1", n)
	}
	var routes []string
	for i := range n {
		routes = append(routes, "nats-route://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port+devClusterPortOffset+i)))
	}
	srvs := make([]*server.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			srvs[i], errs[i] = natsboot.StartServer(natsboot.ServerConfig{
				Name:       fmt.Sprintf("teatree-dev-%d", i),
				Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port+i)),
				StoreDir:   filepath.Join(data, fmt.Sprintf("nats-%d", i)),
				SyncAlways: true,
				Cluster: natsboot.ClusterConfig{
					Name:   "teatree-dev",
					Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port+devClusterPortOffset+i)),
					Routes: routes,
				},
			})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		shutdownAll(srvs)
		return nil, fmt.Errorf("start the local cluster (pick other ports with --port): %w", err)
	}
	return srvs, nil
}

func shutdownAll(srvs []*server.Server) {
	for _, s := range srvs {
		if s != nil {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
}
