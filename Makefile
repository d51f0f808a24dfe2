# Container images of mlbench (docker/README.md). `make help` lists the targets.
#
#   make images                          mlbench/{master,dashboard,worker,worker-cuda}:<version>
#   make images REGISTRY=ghcr.io/acme TAG=dev
#   make image-worker DOCKER=podman
#
# TAG defaults to the version in pyproject.toml; REGISTRY (empty by default) is prepended as
# REGISTRY/mlbench/<image>:TAG. The build context is the repository root (see .dockerignore).

SHELL := /bin/sh

DOCKER ?= docker
REGISTRY ?=
TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# The locks are resolved for linux x86_64 (docker/requirements*.lock).
PLATFORM ?= linux/amd64
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_FLAGS ?=
PYTHON ?= .venv/bin/python
HADOLINT ?= $(if $(wildcard .venv/bin/hadolint),.venv/bin/hadolint,hadolint)

IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY:%/=%)/)mlbench
DOCKER_BUILD = $(DOCKER) build --platform $(PLATFORM) \
	--build-arg VERSION=$(TAG) --build-arg REVISION=$(REVISION) $(BUILD_FLAGS)

DOCKERFILES := docker/master.Dockerfile docker/dashboard.Dockerfile \
	docker/worker.Dockerfile docker/worker-cuda.Dockerfile

.DEFAULT_GOAL := help

.PHONY: help images image-master image-dashboard image-worker image-worker-cuda \
	lint-images lock-images

help: ## List the targets and the variables they read
	@echo "Targets:"
	@sed -n 's/^\([a-z-]*\):.*## \(.*\)/  \1|\2/p' $(MAKEFILE_LIST) | awk -F'|' '{printf "%-20s %s\n", $$1, $$2}'
	@echo "Variables: REGISTRY='$(REGISTRY)' TAG='$(TAG)' PLATFORM='$(PLATFORM)' DOCKER='$(DOCKER)'"
	@echo "           BUILD_FLAGS='$(BUILD_FLAGS)' (e.g. --push with buildx, --no-cache)"

images: image-master image-dashboard image-worker image-worker-cuda ## Build all four images

image-master: ## Build [REGISTRY/]mlbench/master:TAG (docker/master.Dockerfile)
	$(DOCKER_BUILD) -f docker/master.Dockerfile -t $(IMAGE_PREFIX)/master:$(TAG) .

image-dashboard: ## Build [REGISTRY/]mlbench/dashboard:TAG (docker/dashboard.Dockerfile)
	$(DOCKER_BUILD) -f docker/dashboard.Dockerfile -t $(IMAGE_PREFIX)/dashboard:$(TAG) .

image-worker: ## Build [REGISTRY/]mlbench/worker:TAG, CPU torch (docker/worker.Dockerfile)
	$(DOCKER_BUILD) -f docker/worker.Dockerfile -t $(IMAGE_PREFIX)/worker:$(TAG) .

image-worker-cuda: ## Build [REGISTRY/]mlbench/worker-cuda:TAG, CUDA torch (docker/worker-cuda.Dockerfile)
	$(DOCKER_BUILD) -f docker/worker-cuda.Dockerfile -t $(IMAGE_PREFIX)/worker-cuda:$(TAG) .

lint-images: ## Lint the Dockerfiles with hadolint (pip install -e '.[test]' brings it)
	$(HADOLINT) --config docker/hadolint.yaml $(DOCKERFILES)

lock-images: ## Regenerate docker/requirements.lock (from .venv) and requirements-cuda.lock (PyPI)
	$(PYTHON) docker/lock.py
	$(PYTHON) docker/lock.py --cuda
