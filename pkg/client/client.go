// Package client is the Go SDK for teatree's HTTP gateway.
package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Client talks to one gateway.
type Client struct {
	base string
	http *http.Client
}

// options are what the Options set, for New to assemble.
type options struct {
	token     string
	transport http.RoundTripper
}

// Option configures a Client.
type Option func(*options)

// WithToken sends token as Authorization: Bearer <token> on every request,
// as a gateway started with --auth needs. An empty token sends none.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithTransport sends the requests through rt instead of
// http.DefaultTransport: for an https:// gateway whose certificate is
// self-signed, an *http.Transport whose TLSClientConfig trusts it
// (tlsconf.ClientConfig).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// New returns a client of the gateway at baseURL, e.g. http://127.0.0.1:8080
// or https://teatree.example.
func New(baseURL string, opts ...Option) *Client {
	o := options{transport: http.DefaultTransport}
	for _, opt := range opts {
		opt(&o)
	}
	rt := o.transport
	if o.token != "" {
		rt = bearer{token: o.token, next: rt}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), http: &http.Client{Transport: rt}}
}

// CreateModel creates a model.
func (c *Client) CreateModel(ctx context.Context, spec *teatreev1.ModelSpec) (*teatreev1.ModelSpec, error) {
	out := &teatreev1.ModelSpec{}
	return out, c.call(ctx, http.MethodPost, "/v1/models", spec, out)
}

// ListModels lists every model.
func (c *Client) ListModels(ctx context.Context) (*teatreev1.ModelList, error) {
	out := &teatreev1.ModelList{}
	return out, c.call(ctx, http.MethodGet, "/v1/models", nil, out)
}

// GetModel shows a model: its spec, owner, version and lag.
func (c *Client) GetModel(ctx context.Context, model string) (*teatreev1.ModelInfo, error) {
	out := &teatreev1.ModelInfo{}
	return out, c.call(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model), nil, out)
}

// DeleteModel deletes a model, its log and its snapshots.
func (c *Client) DeleteModel(ctx context.Context, model string) error {
	return c.call(ctx, http.MethodDelete, "/v1/models/"+url.PathEscape(model), nil, nil)
}

// Snapshots lists a model's versions, newest first.
func (c *Client) Snapshots(ctx context.Context, model string) (*teatreev1.SnapshotList, error) {
	out := &teatreev1.SnapshotList{}
	return out, c.call(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/snapshots", nil, out)
}

// Request returns a request's terminal notification.
func (c *Client) Request(ctx context.Context, model, requestID string) (*teatreev1.RequestStatus, error) {
	out := &teatreev1.RequestStatus{}
	return out, c.call(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/requests/"+url.PathEscape(requestID), nil, out)
}

// MutateOptions are the options of a mutation.
type MutateOptions struct {
	// RequestID makes retries safe; empty lets the gateway pick one.
	RequestID string
	// Wait returns the terminal notification instead of the acceptance.
	Wait bool
}

// Result is the answer to a mutation: Accepted, or Status when waiting.
type Result struct {
	Accepted *teatreev1.Accepted
	Status   *teatreev1.RequestStatus
}

// Append appends rows (in the given content type) to a table; with keys,
// it upserts on them.
func (c *Client) Append(ctx context.Context, model, table string, rows io.Reader, contentType string, keys []string, opts MutateOptions) (*Result, error) {
	q := url.Values{}
	if len(keys) > 0 {
		q.Set("key", strings.Join(keys, ","))
	}
	path := "/v1/models/" + url.PathEscape(model) + "/tables/" + url.PathEscape(table) + "/rows"
	return c.mutate(ctx, path, q, rows, contentType, opts)
}

// SQL runs statements in the model's write transaction.
func (c *Client) SQL(ctx context.Context, model string, m *teatreev1.SqlMutation, opts MutateOptions) (*Result, error) {
	b, err := wire.Marshal(m)
	if err != nil {
		return nil, err
	}
	return c.mutate(ctx, "/v1/models/"+url.PathEscape(model)+"/sql", url.Values{}, bytes.NewReader(b), "application/json", opts)
}

func (c *Client) mutate(ctx context.Context, path string, q url.Values, body io.Reader, contentType string, opts MutateOptions) (*Result, error) {
	if opts.Wait {
		q.Set("wait", "applied")
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if opts.RequestID != "" {
		req.Header.Set("Idempotency-Key", opts.RequestID)
	}
	resp, b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if opts.Wait && resp.StatusCode != http.StatusGatewayTimeout {
		// A failed request answers with its notification too.
		st := &teatreev1.RequestStatus{}
		if err := wire.Unmarshal(b, st); err == nil && st.GetStatus() != "" {
			return &Result{Status: st}, nil
		}
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, b)
	}
	acc := &teatreev1.Accepted{}
	if err := wire.Unmarshal(b, acc); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	return &Result{Accepted: acc}, nil
}

// Download opens a file of a version ("latest" or a number).
func (c *Client) Download(ctx context.Context, model, version, file string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/models/"+url.PathEscape(model)+"/snapshots/"+url.PathEscape(version)+"/"+url.PathEscape(file), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, decodeError(resp.StatusCode, b)
	}
	return resp, nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out proto.Message) error {
	var body io.Reader
	if in != nil {
		b, err := wire.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	b, err := c.send(ctx, method, path, body)
	if err != nil || out == nil || len(b) == 0 {
		return err
	}
	return wire.Unmarshal(b, out)
}

// send sends body (JSON, or nothing) and returns the answer's body; an
// answer of 300 or more is the error it carries.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, b)
	}
	return b, nil
}

// do sends req and reads the whole answer.
func (c *Client) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// decodeError turns an error body into an *apierr.Error.
func decodeError(status int, b []byte) error {
	var e teatreev1.ErrorReply
	if err := wire.Unmarshal(b, &e); err == nil && e.GetError().GetCode() != "" {
		return apierr.New(apierr.Code(e.GetError().GetCode()), e.GetError().GetMessage())
	}
	return fmt.Errorf("HTTP %d: %s", status, strings.TrimSpace(string(b)))
}

// Page is one page of a query's result.
type Page struct {
	Body        []byte
	ContentType string
	Version     uint64
	Page, Pages int
	Rows        int64
	// ResultID names the stored result when there is more than one page.
	ResultID string
}

// Query runs a query and returns its first page.
func (c *Client) Query(ctx context.Context, model string, q *teatreev1.Query) (*Page, error) {
	b, err := wire.Marshal(q)
	if err != nil {
		return nil, err
	}
	return c.page(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/query", bytes.NewReader(b))
}

// Page returns page n of a stored result.
func (c *Client) Page(ctx context.Context, model, resultID string, n int) (*Page, error) {
	q := url.Values{"result": {resultID}, "page": {strconv.Itoa(n)}}
	return c.page(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/query?"+q.Encode(), nil)
}

func (c *Client) page(ctx context.Context, method, path string, body io.Reader) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp.StatusCode, b)
	}
	h := resp.Header
	p := &Page{Body: b, ContentType: h.Get("Content-Type"), ResultID: h.Get(subject.HeaderResultID)}
	p.Version, _ = strconv.ParseUint(h.Get(subject.HeaderVersion), 10, 64)
	p.Page, _ = strconv.Atoi(h.Get(subject.HeaderPage))
	p.Pages, _ = strconv.Atoi(h.Get(subject.HeaderPages))
	p.Rows, _ = strconv.ParseInt(h.Get(subject.HeaderRows), 10, 64)
	return p, nil
}

// Pin keeps a version ("latest" or a number) from garbage collection until
// Unpin or the pin's TTL; RenewPin extends it.
func (c *Client) Pin(ctx context.Context, model, version string) (*teatreev1.VersionPin, error) {
	out := &teatreev1.VersionPin{}
	return out, c.call(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/snapshots/"+url.PathEscape(version)+"/pins", nil, out)
}

// RenewPin extends a pin.
func (c *Client) RenewPin(ctx context.Context, p *teatreev1.VersionPin) error {
	return c.call(ctx, http.MethodPut, pinPath(p), nil, nil)
}

// Unpin removes a pin.
func (c *Client) Unpin(ctx context.Context, p *teatreev1.VersionPin) error {
	return c.call(ctx, http.MethodDelete, pinPath(p), nil, nil)
}

func pinPath(p *teatreev1.VersionPin) string {
	return "/v1/models/" + url.PathEscape(p.GetModel()) + "/snapshots/" + strconv.FormatUint(p.GetVersion(), 10) + "/pins/" + url.PathEscape(p.GetPinId())
}
