package main

import (
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/teatree-dev/teatree/pkg/tlsconf"
)

// transportOf is the HTTP transport of the gateway commands: it trusts
// --ca, if given, for https:// gateways.
func transportOf(cmd *cobra.Command) http.RoundTripper {
	ca, _ := cmd.Flags().GetString("ca")
	if ca == "" {
		return http.DefaultTransport
	}
	cfg, err := tlsconf.ClientConfig(ca)
	if err != nil {
		return refuse{fmt.Errorf("--ca: %w", err)}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return t
}

// refuse fails every request with the reason the transport could not be
// made, so that a bad --ca is reported by the command that needed it.
type refuse struct{ err error }

// RoundTrip closes the body, as a RoundTripper must even when it fails.
func (r refuse) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, r.err
}
