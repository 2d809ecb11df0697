# Latchkey — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
# The approved toolchain: `go` fetches it through the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
# Extra `go test` flags; CI sets GOTESTFLAGS=-race (needs a C compiler).
GOTESTFLAGS ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
TS_CLIENT := clients/typescript
# npm ci runs again only when the lockfile changes (npm writes this file last).
TS_DEPS   := $(TS_CLIENT)/node_modules/.package-lock.json

.PHONY: run test build bench generate check-generated lint-spec vet fmt-check

## run: serve on SQLite in ./data with development defaults
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/latchkey serve

## test: every Go suite (SQLite always; PostgreSQL and Redis too when their
## LATCHKEY_TEST_*_URL is set), then the TypeScript client against the real binary
test: $(TS_DEPS)
	$(GO) test $(GOTESTFLAGS) -count=1 -timeout 30m ./...
	cd $(TS_CLIENT) && GO=$(GO) npm test

## build: the latchkey binary in ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/latchkey ./cmd/latchkey

## bench: the load benchmark on loopback (bench/README.md), bounded: about
## two minutes; BENCHFLAGS=-mode=long for longer phases and 100k accounts.
## PostgreSQL too when LATCHKEY_TEST_POSTGRES_URL is set. Not run by CI.
BENCHFLAGS ?=
bench:
	$(GO) run ./bench $(BENCHFLAGS)

## generate: regenerate gen/ and the TypeScript types from openapi.yaml
generate: $(TS_DEPS)
	$(GO) generate ./gen/...
	cd $(TS_CLIENT) && npm run --silent generate

## check-generated: fail when regenerating changes anything
check-generated: generate
	@git diff --exit-code -- gen/ $(TS_CLIENT)/src/schema.ts || { echo "generated code is stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen/ $(TS_CLIENT)/src/schema.ts)" || { git status --porcelain -- gen/ $(TS_CLIENT)/src/schema.ts; echo "generated files are not committed" >&2; exit 1; }

## lint-spec: lint openapi.yaml with Redocly CLI and the rules in .redocly.yaml
lint-spec: $(TS_DEPS)
	cd $(TS_CLIENT) && npm run --silent lint:spec

$(TS_DEPS): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
