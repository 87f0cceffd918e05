# k4t — see README.md. `make demo` and `make test` are the quick start.
SHELL := /bin/bash
GO ?= go
# Go from PATH, else where the official tarball puts it (for the build scripts and gofmt too).
export PATH := $(PATH):/usr/local/go/bin
export GOTOOLCHAIN := local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/k4t
K8S_VERSION ?= v1.37.2
# The version the upgrade e2e tests create clusters at, then upgrade from.
UPGRADE_FROM ?= v1.36.3
ETCD_VERSION ?= v3.6.16
ARTIFACT_CACHE ?= /var/cache/k4t/artifacts
FUZZTIME ?= 30000x
E2E_TIMEOUT ?= 75m

# Debian packages the lab and tests need, installed when missing (hack/deps.sh): a fresh
# machine needs nothing but `make demo` or `make test`.
.PHONY: all build deps test unit fuzz e2e bench demo demo-down artifacts upgrade-artifacts lab-artifacts lint clean

all: build

deps:
	hack/deps.sh

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/k4t

# Offline artifacts, built once from the Go module proxy and cached by version.
lab-artifacts: deps
	hack/build-artifacts/build.sh etcd
	hack/build-artifacts/build.sh kubeadm
	hack/build-artifacts/build.sh containerd

# Everything a cluster needs for K8S_VERSION (binaries and images), ~25 min cold on 2 cores.
artifacts: deps
	hack/build-artifacts/build.sh all

# The set the upgrade tests start from (~12 min cold: the shared pieces come from `artifacts`).
upgrade-artifacts: artifacts
	K8S_VERSION=$(UPGRADE_FROM) hack/build-artifacts/build.sh all

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy -diff

unit: lab-artifacts
	$(GO) test -race -count=1 ./cmd/... ./pkg/... ./hack/...

fuzz:
	$(GO) test -run '^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./pkg/apis/v1alpha1

# End-to-end tests on real hosts (systemd-nspawn lab): root required.
# The output goes through hack/testrecap, which ends it with every failed test's own log lines:
# a CI log's tail then says why a run failed, not only which test did.
e2e: build artifacts upgrade-artifacts
	$(GO) build -o bin/testrecap ./hack/testrecap
	set -o pipefail; K4T_LAB_TEST=1 $(GO) test -count=1 -json -timeout 10m -run TestLabE2E ./pkg/lab | bin/testrecap
	set -o pipefail; K4T_E2E=1 K4T_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -json -timeout $(E2E_TIMEOUT) ./test/e2e | bin/testrecap

test: deps lint unit fuzz e2e

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 20m ./test/bench | tee bench.out

demo: deps build artifacts
	$(BIN) lab up --hosts slb1,slb2,master1,master2,master3,worker1,worker2 --inventory examples/lab/hosts.yaml
	$(BIN) create cluster -f examples/lab/hosts.yaml --accept-new-hosts
	$(ARTIFACT_CACHE)/$(K8S_VERSION)/bin/kubectl --kubeconfig $$HOME/.k4t/clusters/lab/admin.conf get nodes -o wide

demo-down: build
	$(BIN) lab down

clean:
	rm -rf bin
