package stack_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/authtest"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/tlsconf"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// autoTLS makes a self-signed pair as `--tls auto` does, and returns its
// server configuration and the certificate's file, for clients to trust.
func autoTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tls")
	cfg, err := tlsconf.Auto(dir)
	require.NoError(t, err)
	return cfg, filepath.Join(dir, tlsconf.AutoCert)
}

// upWithTLS is the configuration of `up --tls auto`: the gateway and the
// embedded server present the same pair.
func upWithTLS(t *testing.T, cfg *tls.Config, holder *auth.Holder) stack.Config {
	return stack.Config{
		Services: stack.AllServices,
		Data:     t.TempDir(),
		HTTPAddr: "127.0.0.1:0",
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 4, Memory: 2 << 30, Threads: 1},
		TLS:      cfg,
		Embedded: natsboot.ServerConfig{TLS: cfg.Clone()},
		Auth:     holder,
	}
}

func trusting(t *testing.T, caFile string) http.RoundTripper {
	t.Helper()
	cfg, err := tlsconf.ClientConfig(caFile)
	require.NoError(t, err)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// TestTLSOnBothPorts: with a generated certificate the gateway answers
// HTTPS only and the embedded NATS server TLS only; clients that trust
// the certificate's file get through.
func TestTLSOnBothPorts(t *testing.T) {
	t.Parallel()
	cfg, certFile := autoTLS(t)
	st := runStack(t, upWithTLS(t, cfg, nil))
	require.True(t, strings.HasPrefix(st.HTTPURL, "https://"), st.HTTPURL)
	require.True(t, strings.HasPrefix(st.NATSURL, "tls://"), st.NATSURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// HTTPS, trusting the certificate's file: a model, a write, a query.
	c := client.New(st.HTTPURL, client.WithTransport(trusting(t, certFile)))
	_, err := c.CreateModel(ctx, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err, "logs:\n%s", st.logs)
	requireWriteAndQuery(ctx, t, st, c)

	// Not trusting it, or in plain HTTP: refused.
	_, err = client.New(st.HTTPURL).ListModels(ctx)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
	plain := "http://" + strings.TrimPrefix(st.HTTPURL, "https://")
	res, err := http.Get(plain + "/v1/models")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode, "plain HTTP to the HTTPS port: %s", body)
	require.Contains(t, string(body), "HTTPS server")

	// NATS: a plain client is refused; one trusting the file gets in.
	natsAddr := strings.TrimPrefix(st.NATSURL, "tls://")
	requirePlainNATSRefused(t, natsAddr)
	_, err = nats.Connect("nats://"+natsAddr, nats.Timeout(5*time.Second))
	require.ErrorAs(t, err, &unknown, "the server asks for TLS; its certificate is none the system trusts")
	nc, err := nats.Connect(st.NATSURL, nats.RootCAs(certFile))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.AccountInfo(ctx)
	require.NoError(t, err)
}

// requirePlainNATSRefused speaks the NATS protocol in plain text to addr:
// the server announces that it requires TLS and hangs up rather than
// answer a plain CONNECT.
func requirePlainNATSRefused(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, info, `"tls_required":true`)
	_, err = io.WriteString(conn, "CONNECT {\"verbose\":false}\r\nPING\r\n")
	require.NoError(t, err)
	rest, err := io.ReadAll(r)
	require.NotContains(t, string(rest), "PONG", "the server answered a plain client")
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server neither answered nor hung up: %v", err)
}

// TestTLSWithAuth: the secured embedded server keeps its certificate
// when the catalog reloads its users, and a principal connects over TLS.
func TestTLSWithAuth(t *testing.T) {
	t.Parallel()
	cfg, certFile := autoTLS(t)
	holder, err := auth.NewHolder(authtest.WritePolicy(t))
	require.NoError(t, err)
	st := runStack(t, upWithTLS(t, cfg, holder))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(st.HTTPURL, client.WithToken(authtest.RootToken), client.WithTransport(trusting(t, certFile)))
	_, err = c.CreateModel(ctx, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err, "logs:\n%s", st.logs)
	require.Eventually(t, func() bool { return strings.Contains(st.logs.String(), "models=1") },
		60*time.Second, 20*time.Millisecond, "%s", st.logs)

	nc, err := nats.Connect(st.NATSURL, nats.RootCAs(certFile),
		nats.UserInfo(authtest.Writer, authtest.Password(authtest.Writer)), nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Writer)))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Publish(ctx, "tt.mut.sales.sql."+authtest.Writer, []byte(`{"sql":"create table t as select 1 as x"}`))
	require.NoError(t, err)
	requirePlainNATSRefused(t, strings.TrimPrefix(st.NATSURL, "tls://"))
}

// TestServeAgainstTLSNATS: services against an external server that
// requires TLS connect with its CA file (--nats-ca), and fail to without.
func TestServeAgainstTLSNATS(t *testing.T) {
	t.Parallel()
	cfg, certFile := autoTLS(t)
	srv, err := natsboot.StartServer(natsboot.ServerConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir(), TLS: cfg})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	u, err := url.Parse(srv.ClientURL())
	require.NoError(t, err)
	require.Equal(t, "tls", u.Scheme)
	opts, err := natsboot.Credentials{}.Options()
	require.NoError(t, err)
	_, err = nats.Connect("nats://"+u.Host, append(opts, nats.Timeout(5*time.Second))...)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown, "without the CA file the server's certificate is refused")

	st := runStack(t, stack.Config{
		Services: []string{stack.Gateway, stack.Dispatcher, stack.Notifier, stack.Node},
		NATSURL:  "nats://" + u.Host, // --nats-ca alone asks for TLS
		NATS:     natsboot.Credentials{CAFile: certFile},
		Data:     t.TempDir(),
		HTTPAddr: "127.0.0.1:0",
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 4, Memory: 2 << 30, Threads: 1},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := client.New(st.HTTPURL)
	_, err = c.CreateModel(ctx, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err, "logs:\n%s", st.logs)
	requireWriteAndQuery(ctx, t, st, c)
}

// requireWriteAndQuery writes to model sales through c and reads it back.
func requireWriteAndQuery(ctx context.Context, t *testing.T, st *running, c *client.Client) {
	t.Helper()
	res, err := c.SQL(ctx, "sales", &teatreev1.SqlMutation{Sql: "create table t as select 42 as x"}, client.MutateOptions{Wait: true})
	require.NoError(t, err, "logs:\n%s", st.logs)
	q := &teatreev1.Query{Sql: "select x from t", Format: "csv", MinSeq: res.Status.GetSeq()}
	require.Eventually(t, func() bool {
		page, err := c.Query(ctx, "sales", q)
		return err == nil && string(page.Body) == "x\n42\n"
	}, time.Minute, 50*time.Millisecond, "logs:\n%s", st.logs)
}
