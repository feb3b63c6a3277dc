package client

import "net/http"

// bearer adds the Authorization header to every request the client sends,
// in the one place they all pass.
type bearer struct {
	token string
	next  http.RoundTripper
}

// RoundTrip sends a copy of req with the token, as a RoundTripper must not
// change the request it is given.
func (b bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(req)
}
