# vzfs build, test and benchmark entry points. `make demo` and `make test`
# do their own set-up on a fresh Debian machine (scripts/deps.sh).

GO        ?= go
BIN       := bin/vzfs
VERSION   := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -X main.version=$(VERSION)
PREFIX    ?= /usr/local
STATICCHECK_VERSION := v0.8.2
FUZZTIME  ?= 10s
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: all build deps test unit integration demo bench fuzz fuzz-long lint install clean stress

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vzfs

deps:
	@scripts/deps.sh

# Unit tests with the race detector, then the end-to-end suite (real
# binaries, FUSE mounts and chroots; it needs root).
test: deps unit integration

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

integration: deps
	$(GO) test -count=1 -timeout 40m -v ./integration

demo: deps build
	@scripts/demo.sh $(BIN)

# bench/run.sh runs every area, then bench/report writes BENCHMARKS.md and
# docs/benchmarks.svg from bench/out/*.tsv (make stress adds scale.tsv).
bench: build
	@bench/run.sh $(BIN)

# Each fuzz target for a short budget; fuzz-long is the hardening budget.
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

fuzz-long:
	@scripts/fuzz.sh 60s

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vzfs

# --- stress (issue 7): the fault and load suite at full length, with the
# 1,000,000-entry scale run; `make test` runs the same tests briefly.
# Numbers of the scale run go to bench/out/scale.tsv for BENCHMARKS.md.
stress: deps
	@mkdir -p bench/out
	VZFS_STRESS=long VZFS_STRESS_OUT=$(CURDIR)/bench/out $(GO) test -count=1 -timeout 30m -v \
		-run 'TestStress|TestHostile' ./integration
# --- end stress

clean:
	rm -rf bin bench/out
