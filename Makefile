# teatree — `make help` lists the targets.

# duckdb-go's Arrow interface, which ingest uses, is behind this build tag.
export GOFLAGS := -tags=duckdb_arrow
SHELL   := bash
GO      ?= go
DATA    ?= ./teatree-data
HTTP    ?= 127.0.0.1:8080
NATS    ?= 127.0.0.1:4222

.DEFAULT_GOAL := help

include proto.mk

.PHONY: help build run test test-unit test-e2e test-deploy lint fmt bench bench-quick

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

build: ## Build the one binary at bin/teatree
	$(GO) build -o bin/teatree ./services/cmd/teatree

run: build ## Build and run `teatree up` (embedded NATS) with data in $(DATA)
	./bin/teatree up --data $(DATA) --http $(HTTP) --nats $(NATS)

test: lint test-unit test-e2e test-deploy ## Lint, then run every test (unit, in-process, end-to-end and deploy/)

test-unit: ## Unit and in-process tests (embedded JetStream, real DuckDB files)
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /test/)

test-e2e: build test/node/node_modules examples/node-worker/node_modules ## End-to-end, crash, Node.js client and Node.js worker tests against the built binary
	TEATREE_BIN=$(CURDIR)/bin/teatree $(GO) test -count=1 -timeout 30m ./test/...

# deploy/check is a module of its own (Kubernetes and KEDA types); it checks
# the manifests' args against the flags of the built binary.
test-deploy: build ## Render every manifest in deploy/ and check it offline against the Kubernetes and KEDA types
	cd deploy/check && $(GO) vet ./... && TEATREE_BIN=$(CURDIR)/bin/teatree $(GO) test -count=1 ./...

# The Node.js client check uses the public npm packages, pinned by the lock file.
test/node/node_modules: test/node/package.json test/node/package-lock.json
	cd test/node && npm install --no-audit --no-fund
	@touch $@

# The Node.js compute worker of examples/ is run by test/e2e; npm ci installs
# exactly its lock file.
examples/node-worker/node_modules: examples/node-worker/package.json examples/node-worker/package-lock.json
	cd examples/node-worker && npm ci --no-audit --no-fund
	@touch $@

bench: build ## Benchmarks beside raw DuckDB and raw JetStream (about 20 min); report in bench/ and docs/benchmarks.md
	./bin/teatree bench --out bench --docs docs/benchmarks.md

bench-quick: build ## The benchmarks at small sizes (about 3 min)
	./bin/teatree bench --quick --out bench

lint: ## gofmt and go vet
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt: ## Format the code
	gofmt -w $$(git ls-files '*.go')
