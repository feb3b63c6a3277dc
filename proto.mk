# proto.mk: protobuf code generation, included by the main Makefile.
#
# buf and protoc-gen-go are pinned in tools/go.mod and run with `go run`
# through go.work (Go caches the built binaries, so only the first run
# compiles buf). buf.gen.yaml runs protoc-gen-go the same way.

# Repository root: the directory holding this file (buf.yaml, go.work).
PROTO_ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

PROTO_GO  ?= go
# Always resolve the tools through the workspace, even if the caller's
# environment says GOWORK=off; buf passes the environment on to the plugin.
PROTO_ENV := GOWORK=$(PROTO_ROOT)/go.work
BUF       := $(PROTO_ENV) $(PROTO_GO) run github.com/bufbuild/buf/cmd/buf

.PHONY: proto proto-lint proto-check

proto: proto-lint ## Lint proto/ and regenerate Go code (proto/**/*.pb.go) with buf
	cd $(PROTO_ROOT) && $(BUF) generate

proto-lint: ## Lint proto/ with buf
	cd $(PROTO_ROOT) && $(BUF) lint

proto-check: proto ## Fail if the generated protobuf Go code is stale (for CI)
	@cd $(PROTO_ROOT) && \
	untracked="$$(git ls-files --others --exclude-standard -- proto)"; \
	if ! git diff --quiet --exit-code -- proto || [ -n "$$untracked" ]; then \
		echo >&2; \
		echo "proto-check: generated protobuf code is out of date:" >&2; \
		git diff --stat -- proto >&2; \
		if [ -n "$$untracked" ]; then echo "untracked:" >&2; echo "$$untracked" | sed 's/^/  /' >&2; fi; \
		echo "Run 'make proto' and commit the changes under proto/." >&2; \
		exit 1; \
	fi
	@echo "proto-check: generated code is up to date."
