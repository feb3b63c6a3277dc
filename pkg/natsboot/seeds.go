package natsboot

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// SeedURLs splits a comma-separated list of NATS server URLs, such as
// "nats://a:4222,nats://b:4222", and checks each one. A client given
// several connects to any of them and learns of the rest of the cluster
// from the server it reaches.
func SeedURLs(list string) ([]string, error) {
	var urls []string
	var errs []error
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			errs = append(errs, fmt.Errorf("nats URLs %q: an empty entry; separate URLs with single commas", list))
			continue
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("nats URL %q: %w", raw, err))
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			errs = append(errs, fmt.Errorf("nats URL %q: want nats://HOST:PORT (or tls://, ws://, wss://)", raw))
		case u.Hostname() == "":
			errs = append(errs, fmt.Errorf("nats URL %q: no host; want nats://HOST:PORT", raw))
		default:
			urls = append(urls, raw)
		}
	}
	return urls, errors.Join(errs...)
}
