//go:build tools

// Package tools pins the versions of the command-line tools used to build
// teatree (see proto.mk). It is never compiled into a binary.
package tools

import (
	_ "github.com/bufbuild/buf/cmd/buf"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
