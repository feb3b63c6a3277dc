package blob

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// OpenStore returns the store a --blobs flag names: a local directory, or
//
//	s3://BUCKET/PREFIX?endpoint=http://HOST:PORT&region=REGION&path_style=true
//
// with PREFIX and every query parameter optional; without an endpoint it
// is AWS itself. Credentials come from the standard AWS sources.
func OpenStore(ctx context.Context, spec string) (Store, error) {
	if spec == "" {
		return nil, fmt.Errorf("blob store: empty; give a directory or s3://BUCKET/PREFIX")
	}
	if strings.HasPrefix(spec, "s3:") && !strings.HasPrefix(spec, "s3://") {
		return nil, fmt.Errorf("blob store %q: want s3://BUCKET/PREFIX", spec)
	}
	if !strings.Contains(spec, "://") {
		return NewDir(spec)
	}
	cfg, err := ParseS3URL(spec)
	if err != nil {
		return nil, err
	}
	return NewS3(ctx, cfg)
}

// ParseS3URL reads s3://BUCKET/PREFIX?endpoint=...&region=...&path_style=...
func ParseS3URL(spec string) (S3Config, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return S3Config{}, fmt.Errorf("blob store %q: %w", spec, err)
	}
	if u.Scheme != "s3" {
		return S3Config{}, fmt.Errorf("blob store %q: scheme %q is not supported; give a directory or s3://BUCKET/PREFIX", spec, u.Scheme)
	}
	if u.User != nil || u.Port() != "" || u.Fragment != "" {
		return S3Config{}, fmt.Errorf("blob store %q: want s3://BUCKET/PREFIX?endpoint=URL&region=REGION&path_style=true, without user, port or fragment (credentials come from the AWS environment)", spec)
	}
	cfg := S3Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if cfg.Bucket == "" {
		return S3Config{}, fmt.Errorf("blob store %q: no bucket; want s3://BUCKET/PREFIX", spec)
	}
	if cfg.Prefix != "" {
		if err := checkKey(cfg.Prefix); err != nil {
			return S3Config{}, fmt.Errorf("blob store %q: prefix: %w", spec, err)
		}
	}
	q := u.Query()
	for name, vals := range q {
		if len(vals) != 1 {
			return S3Config{}, fmt.Errorf("blob store %q: parameter %s given %d times", spec, name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return S3Config{}, fmt.Errorf("blob store %q: endpoint %q: want http://HOST:PORT or https://HOST", spec, v)
			}
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return S3Config{}, fmt.Errorf("blob store %q: path_style %q: want true or false", spec, v)
			}
			cfg.PathStyle = b
		default:
			return S3Config{}, fmt.Errorf("blob store %q: unknown parameter %q; known: endpoint, region, path_style", spec, name)
		}
	}
	return cfg, nil
}
