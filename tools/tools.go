//go:build tools

// Package tools pins the versions of the command-line tools used to build
// teatree (see proto.mk) and the servers its tests run (versitygw, the S3
// server of internal/s3test). It is never compiled into a binary.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "github.com/versity/versitygw/cmd/versitygw"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
