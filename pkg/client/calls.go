package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/teatree-dev/teatree/pkg/calls"
)

// CallRecord returns the record of compute call id of model.
func (c *Client) CallRecord(ctx context.Context, model, id string) (*calls.Record, error) {
	out := &calls.Record{}
	return out, c.jsonCall(ctx, http.MethodGet, callPath(model, id), out)
}

// CancelCall cancels compute call id of model and returns its record as
// it was; a call that has ended is left as it is.
func (c *Client) CancelCall(ctx context.Context, model, id string) (*calls.Record, error) {
	out := &calls.Record{}
	return out, c.jsonCall(ctx, http.MethodDelete, callPath(model, id), out)
}

// Workers returns the live compute workers' heartbeats, by id.
func (c *Client) Workers(ctx context.Context) ([]calls.Heartbeat, error) {
	var out struct {
		Workers []calls.Heartbeat `json:"workers"`
	}
	return out.Workers, c.jsonCall(ctx, http.MethodGet, "/v1/workers", &out)
}

func callPath(model, id string) string {
	return "/v1/models/" + url.PathEscape(model) + "/calls/" + url.PathEscape(id)
}

// jsonCall sends a request without a body and decodes a JSON answer
// (not a contract message) into out.
func (c *Client) jsonCall(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, b, err := c.do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}
