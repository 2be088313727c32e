# mcpbus: `make run` starts the gateway with demo upstreams; `make test` runs every test.
GO      ?= go
BIN     := bin/mcpbus
MODULES := $(shell $(GO) list -m -f '{{.Dir}}')

.PHONY: run test build image lint unit fuzz-smoke fuzz bench-smoke fault e2e bench clean

# VERSION, if set, is stamped into the binary at link time (`make build
# VERSION=1.2.3`, package bus/version); unset, the binary reports that
# package's default. Either way the build needs no network.
VERSION ?=
LDFLAGS := $(if $(VERSION),-ldflags "-X github.com/mcpbus/mcpbus/bus/version.Version=$(VERSION)")
# The image's binary is also stripped of its symbol tables.
IMAGE_LDFLAGS := -ldflags "-s -w $(if $(VERSION),-X github.com/mcpbus/mcpbus/bus/version.Version=$(VERSION))"

build:
	cd cmd/mcpbus && $(GO) build $(LDFLAGS) -o ../../$(BIN) .

# The container image, built offline from a static binary (no container
# engine, no base image): an OCI archive `docker load -i` / `podman load -i`
# take. deploy/image/Dockerfile builds the same image from source elsewhere.
IMAGE ?= bin/mcpbus-image.tar
image:
	cd cmd/mcpbus && CGO_ENABLED=0 $(GO) build -trimpath $(IMAGE_LDFLAGS) -o ../../bin/image/mcpbus .
	cd cmd/mcpbus && $(GO) run ./internal/ociimage/mkimage -bin ../../bin/image/mcpbus -out ../../$(IMAGE)

run: build
	./deploy/run-demo.sh

test: lint unit fuzz-smoke bench-smoke image fault e2e

# gofmt + go vet over every module of the workspace.
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@echo "lint: gofmt and go vet clean over $(words $(MODULES)) modules"

# Every module, even after a failure; then fail naming the modules that failed.
unit:
	@failed=""; for m in $(MODULES); do (cd $$m && $(GO) test -race -count=1 ./...) || failed="$$failed $${m#$(CURDIR)/}"; done; \
	if [ -n "$$failed" ]; then echo "unit: tests failed in:$$failed"; exit 1; fi

# Fuzz targets, one per line: <package dir>:<FuzzName>. `make unit` runs each
# one's seeds and testdata/fuzz/<FuzzName> corpus as ordinary tests;
# `make fuzz-smoke` fuzzes each for FUZZTIME (2000 inputs), `make fuzz` for 2m
# (`make fuzz FUZZTIME=10m`). go test fuzzes one target per invocation. The
# smoke run counts inputs, not seconds: with a duration, a loaded machine can
# spend it all re-reading the cached corpus and fail with "context deadline
# exceeded" having fuzzed nothing.
FUZZ_TARGETS := \
	bus:FuzzParseMessage \
	bus:FuzzField \
	bus:FuzzEnvelope \
	bus:FuzzServerRequestReplySubject \
	bus:FuzzSubjectTokens \
	bus:FuzzHeaderValue \
	bus:FuzzModernAnswer \
	config:FuzzParse \
	ingress:FuzzClientAddr \
	ingress:FuzzCallerKey
FUZZTIME ?= 2000x
FUZZ_LONG := $(if $(filter file,$(origin FUZZTIME)),2m,$(FUZZTIME))
# Minimizing a large new input can take a minute by default; keep fuzzing.
FUZZFLAGS ?= -fuzzminimizetime 5s
fuzz_run = for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t\#*:} ($${t%%:*}, $(1))"; \
		$(GO) test -run '^$$' -fuzz "^$${t\#*:}\$$" -fuzztime $(1) $(FUZZFLAGS) ./$${t%%:*} || exit 1; \
	done

fuzz-smoke:
	@$(call fuzz_run,$(FUZZTIME))

fuzz:
	@$(call fuzz_run,$(FUZZ_LONG))

# The benchmark harness once, briefly, so it cannot rot: fails only on errors
# or a broken harness, never on a missed target (docs/PERFORMANCE.md).
bench-smoke: build
	cd bench && $(GO) run . -smoke -bin $(CURDIR)/$(BIN)

# The full benchmark (a few minutes): table on stdout, bench/results/latest.json.
bench: build
	cd bench && $(GO) run . -bin $(CURDIR)/$(BIN)

# The fault suite (docs/RELIABILITY.md): a 3-node NATS cluster and every
# service as a process of the real binary; SIGKILL / SIGSTOP one at a time.
fault: build
	cd cmd/mcpbus && MCPBUS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -v -run '^TestFault' ./internal/fault/

# End to end: the real binary driven by the official TypeScript SDK client
# (and, in eras.test.mjs, the Go SDK client as a process, bin/e2eclient).
e2e: build
	cd cmd/mcpbus && $(GO) build -o ../../bin/e2eclient ./internal/e2eclient
	cd e2e && npm ci --no-audit --no-fund --loglevel=error && MCPBUS_BIN=$(CURDIR)/$(BIN) MCPBUS_E2E_GOCLIENT=$(CURDIR)/bin/e2eclient npm test

clean:
	rm -rf bin e2e/node_modules
