package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func functionPath(model, name string) string {
	p := "/v1/models/" + url.PathEscape(model) + "/functions"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// PutFunction registers or replaces function name on model from its JSON
// definition and returns the definition as stored.
func (c *Client) PutFunction(ctx context.Context, model, name string, def []byte) (*function.Definition, error) {
	out := &function.Definition{}
	return out, c.callJSON(ctx, http.MethodPut, functionPath(model, name), bytes.NewReader(def), out)
}

// GetFunction returns the definition of function name on model.
func (c *Client) GetFunction(ctx context.Context, model, name string) (*function.Definition, error) {
	out := &function.Definition{}
	return out, c.callJSON(ctx, http.MethodGet, functionPath(model, name), nil, out)
}

// ListFunctions returns the functions of model, by name.
func (c *Client) ListFunctions(ctx context.Context, model string) ([]*function.Definition, error) {
	var out struct {
		Functions []*function.Definition `json:"functions"`
	}
	return out.Functions, c.callJSON(ctx, http.MethodGet, functionPath(model, ""), nil, &out)
}

// DeleteFunction removes function name from model.
func (c *Client) DeleteFunction(ctx context.Context, model, name string) error {
	return c.callJSON(ctx, http.MethodDelete, functionPath(model, name), nil, nil)
}

// CallOptions are the options of a function call.
type CallOptions struct {
	MutateOptions
	// DeadlineMS and MinSeq go with a compute call (0: the function's
	// deadline, the newest version).
	DeadlineMS int64
	MinSeq     uint64
}

// CallAnswer is the gateway's answer to a call as it came: 202 with
// {"request_id","seq"}, or, when waiting, the terminal notification (a
// status, or the first page of a compute call's result).
type CallAnswer struct {
	StatusCode  int
	Status      string // Tt-Status of a notification; "" for 202
	ContentType string
	Body        []byte
}

// Call calls function name of model with args.
func (c *Client) Call(ctx context.Context, model, name string, args map[string]any, opts CallOptions) (*CallAnswer, error) {
	if args == nil {
		args = map[string]any{}
	}
	b, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if opts.Wait {
		q.Set("wait", subject.StatusApplied)
	}
	if opts.DeadlineMS > 0 {
		q.Set("deadline_ms", strconv.FormatInt(opts.DeadlineMS, 10))
	}
	if opts.MinSeq > 0 {
		q.Set("min_seq", strconv.FormatUint(opts.MinSeq, 10))
	}
	path := "/v1/models/" + url.PathEscape(model) + "/calls/" + url.PathEscape(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if opts.RequestID != "" {
		req.Header.Set("Idempotency-Key", opts.RequestID)
	}
	resp, body, err := c.do(req)
	if err != nil {
		return nil, err
	}
	status := resp.Header.Get(subject.HeaderStatus)
	if resp.StatusCode >= 300 && status == "" {
		return nil, decodeError(resp.StatusCode, body)
	}
	return &CallAnswer{StatusCode: resp.StatusCode, Status: status, ContentType: resp.Header.Get("Content-Type"), Body: body}, nil
}

// callJSON sends body (JSON, or nothing) and decodes a JSON answer into
// out (nil: none expected).
func (c *Client) callJSON(ctx context.Context, method, path string, body io.Reader, out any) error {
	b, err := c.send(ctx, method, path, body)
	if err != nil || out == nil || len(b) == 0 {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
