# Latchkey — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: run test build generate check-generated vet fmt-check ci

## run: serve on SQLite in ./data with development defaults
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/latchkey serve

## test: every suite (SQLite always; PostgreSQL too when LATCHKEY_TEST_POSTGRES_URL is set)
test:
	$(GO) test -count=1 -timeout 20m ./...

## build: the latchkey binary in ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/latchkey ./cmd/latchkey

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen/...

## check-generated: fail when regenerating changes anything
check-generated: generate
	@git diff --exit-code -- gen/ || { echo "gen/ is stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked generated files" >&2; exit 1; }

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
