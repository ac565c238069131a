# The README's two commands are `make demo` and `make test`. Both check for
# Go 1.26, install what they need on a fresh Debian/Ubuntu machine (as root,
# or with sudo), then do their job. `make bench` regenerates
# docs/BENCHMARKS.md. `make install` puts auths-agent in $(go env GOPATH)/bin,
# or PREFIX/bin when PREFIX is given.

SHELL := /bin/bash
GO ?= go
export GO

# What the demo needs: cgo for piv-go and PKCS#11, SoftHSM for tokens, git.
DEMO_PKGS := gcc libc6-dev pkg-config git libpcsclite-dev softhsm2
# What the tests need besides: pcscd + vpcd for the virtual PIV cards,
# ykcs11 and OpenSC's pkcs11-spy, OpenSSH and pinentry, the namespace
# tools of the card rig, strace (what a registry commit flushes before
# it is reported), and systemd for systemd-analyze and
# systemd-socket-activate (the user units in contrib/systemd).
TEST_PKGS := $(DEMO_PKGS) opensc-pkcs11 opensc pcscd vsmartcard-vpcd ykcs11 strace \
	openssh-client openssh-server pinentry-tty iproute2 util-linux procps \
	systemd

.PHONY: all build install check-go demo-deps test-deps demo test bench vet fuzz clean

all: build

check-go:
	@scripts/check-go.sh

demo-deps: check-go
	@scripts/ensure-apt.sh $(DEMO_PKGS)
	@$(GO) mod download

test-deps: check-go
	@scripts/ensure-apt.sh $(TEST_PKGS)
	@$(GO) mod download

build: demo-deps
	$(GO) build -o bin/auths-agent ./cmd/auths-agent

# go install stamps the version from git (auths-agent --version); GOBIN must
# be absolute.
PREFIX ?=
install: demo-deps
	@if [ -n "$(PREFIX)" ]; then \
		mkdir -p "$(abspath $(PREFIX))/bin" && \
		GOBIN="$(abspath $(PREFIX))/bin" $(GO) install ./cmd/auths-agent && \
		echo "installed $(abspath $(PREFIX))/bin/auths-agent"; \
	else \
		$(GO) install ./cmd/auths-agent && \
		d=$$($(GO) env GOBIN); echo "installed $${d:-$$($(GO) env GOPATH)/bin}/auths-agent"; \
	fi

vet: check-go
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags vpiv ./...

demo: demo-deps
	@scripts/demo.sh

test: test-deps vet
	@scripts/test.sh

bench: test-deps
	@scripts/bench.sh

# Long fuzz runs stay outside CI (their seeds in testdata/fuzz run with the
# tests): make fuzz FUZZTIME=60s. New interesting inputs are minimised only
# briefly: with Go's default (60 s each) FuzzRegistryTree spent nearly all
# its minute minimising (51 executions instead of about 6,000).
FUZZTIME ?= 60s
FUZZMINIMIZE ?= 1x
FUZZ_PKGS := ./kel/ ./hsm/ ./registry/ ./socket/ ./softhsm-test/vpiv/ ./agent/audit/ ./agent/pinentry/
fuzz: check-go
	@for p in $(FUZZ_PKGS); do for t in $$($(GO) test -list 'Fuzz.*' $$p | grep ^Fuzz); do \
		echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$p || exit 1; done; done

clean:
	rm -rf bin .demo
