# edgeadm build and test entry points. `make help` lists them.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

MODULE      := github.com/edgeadm/edgeadm
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
GIT_COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
K8S_VERSION := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null)
K8S_MINOR   := $(word 2,$(subst ., ,$(K8S_VERSION)))
# kubeadm's code inside edgeadm checks version skew against the cluster with
# component-base's version, so it must say the library's version, not v0.0.0.
LDFLAGS     := -s -w \
	-X $(MODULE)/pkg/version.Version=$(VERSION) \
	-X $(MODULE)/pkg/version.GitCommit=$(GIT_COMMIT) \
	-X $(MODULE)/pkg/version.KubernetesVersion=$(K8S_VERSION) \
	$(foreach p,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	  -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=$(K8S_MINOR) -X $(p).gitTreeState=clean)

# e2e tests start real control planes and machines: one package at a time on a
# 2-core machine, and a generous bound so a hang fails instead of stalling CI
# (the autonomy, edge DNS and edge-controller scenarios each take minutes).
E2E_TIMEOUT ?= 90m

.PHONY: help build test lint test-unit test-env test-e2e demo clean generate

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## bin/edgeadm, static, with version, commit and Kubernetes library version stamped in
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/edgeadm ./cmd/edgeadm

# test-env first: it installs vsftpd and the binaries, so the unit tests that can
# use a real FTP server do, instead of skipping.
test: lint test-env test-unit test-e2e ## everything: gofmt, go vet, unit tests, then e2e tests on real parts

lint: ## gofmt and go vet must be clean
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt wants changes in:"; echo "$$unformatted"; echo "fix: gofmt -w <file>"; exit 1; fi
	$(GO) vet ./...

generate: ## EdgeNode deepcopy and CRD from pkg/apis (controller-gen pinned in build/controller-gen)
	scripts/generate.sh

test-unit: ## fast tests: no root, no cluster
	$(GO) test -count=1 $$($(GO) list ./... | grep -v '/test/')

test-env: ## build the pinned test environment (Kubernetes, etcd, containerd, runc, CNI, rootfs) into .cache/test-env
	scripts/test-env.sh

test-e2e: test-env install-pkg images ## tests on a real control plane and real edge hosts (root); the image tarballs are loaded into test hosts
	EDGEADM_E2E=1 $(GO) test -p 1 -count=1 -timeout $(E2E_TIMEOUT) -v ./test/... 2>&1 | scripts/summarize-go-test.sh

demo: build test-env install-pkg ## bring up a local cluster and an edge host and run edgeadm on them
	$(GO) run ./test/cmd/demo

clean: ## remove built output (not the test-env cache: make clean-cache)
	rm -rf bin _output

clean-cache: ## remove the test-env cache (next make test-env rebuilds from scratch)
	scripts/test-env.sh clean

# The offline install package of edge hosts (install-pkg/README.md). ARCH: one or more of
# amd64 arm64 (default: the host's); another arch is cross-built.
INSTALL_PKG_ARCH ?= $(or $(ARCH),$(shell $(GO) env GOHOSTARCH))

# Our container images (docs/images.md): OCI image tarballs with a multi-arch
# index, named the way addon names them (manifests.DefaultImageRepository,
# --edge-version defaulting to edgeadm's own version).
IMAGE_REPOSITORY ?= docker.io/superedge
EDGE_VERSION     ?= $(VERSION)
IMAGES_ARCH      ?= amd64 arm64

.PHONY: images
images: ## _output/images/{edge-controller,edge-coredns}.tar for IMAGES_ARCH; IMAGE_REPOSITORY=, EDGE_VERSION=
	IMAGE_REPOSITORY='$(IMAGE_REPOSITORY)' EDGE_VERSION='$(EDGE_VERSION)' LDFLAGS='$(LDFLAGS)' scripts/images.sh $(IMAGES_ARCH)

.PHONY: install-pkg
install-pkg: ## _output/install-pkg/kube-linux-<arch>-v<k8s>.tar.gz (+ .sha256); ARCH=arm64 or ARCH="amd64 arm64"
	scripts/install-pkg.sh build $(INSTALL_PKG_ARCH)
