package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/teatree-dev/teatree/pkg/catalog"
)

// Move moves a model to node to by hand and returns once to holds its
// lease: the owner finishes its batch in flight, publishes what it
// applied and gives the lease up; requests meanwhile wait, none is lost
// or applied twice.
func (c *Client) Move(ctx context.Context, model, to string) (*catalog.Move, error) {
	b, err := json.Marshal(map[string]string{"to": to})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/models/"+url.PathEscape(model)+"/move", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, body, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, body)
	}
	out := &catalog.Move{}
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("decode move reply: %w", err)
	}
	return out, nil
}
