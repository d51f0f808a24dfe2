# mlbench worker (CUDA): the CUDA build of torch, otherwise the same as the CPU worker image
# (`mlbench-worker`, `python -m workflows.steps`). Build from the repository root:
# `make image-worker-cuda`. Runs GPU pods on nodes with the NVIDIA device plugin; CUDA 13.0 needs
# an NVIDIA driver >= 580 on the node.
#
# Base image: nvidia/cuda's "base" flavour (CUDA runtime and forward-compat libraries only), at an
# exact version tag. torch's CUDA wheel brings cuBLAS, cuDNN, NCCL & co. as pip packages (see
# requirements-cuda.lock), so the "runtime"/"cudnn-runtime" flavours would only add a second copy
# of them (several GB). CUDA 13.0 is what torch 2.13.0's PyPI wheel is built for.
# Not pinned by digest: no authoritative record of this tag's digest could be read where this file
# was written (no registry access, and docker-library/repo-info does not cover nvidia/cuda).
# To pin it: `docker buildx imagetools inspect nvidia/cuda:13.0.2-base-ubuntu24.04`, take the
# "Digest:" line and write `FROM nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:<digest> AS base`.
FROM nvidia/cuda:13.0.2-base-ubuntu24.04 AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Ubuntu 24.04's own CPython 3.12 (mlbench needs >= 3.11; requirements-cuda.lock is resolved for
# it). DL3008 (apt versions) is off here: Ubuntu's archive keeps only the newest build of a package
# in -updates/-security, so an exact `=version` stops resolving at the next security update; the
# pinned base image and its release pocket are the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.12 \
    && rm -rf /var/lib/apt/lists/*

# ---- builder: the project's wheel and every dependency, pinned, in a venv ---------------------
FROM base AS builder
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
# Dependencies before the sources, so that a code change does not reinstall them. torch==2.13.0
# from PyPI is the CUDA build; the NVIDIA libraries it pins are in the lock.
COPY docker/requirements-cuda.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --requirement /tmp/requirements.lock
COPY pyproject.toml README.md /src/
COPY mlbench_core /src/mlbench_core
COPY master /src/master
COPY worker /src/worker
COPY workflows /src/workflows
COPY bokeh_app /src/bokeh_app
# setuptools (the build backend) is in the lock: torch needs it at run time too.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /tmp/dist /src \
    && pip install --no-cache-dir --no-deps /tmp/dist/mlbench-*.whl \
    && pip check

# ---- runtime: the venv, a non-root user, nothing to build with ---------------------------------
FROM base AS runtime
ARG VERSION=0.1.0
ARG REVISION=
LABEL org.opencontainers.image.title="mlbench-worker-cuda" \
      org.opencontainers.image.description="mlbench worker (CUDA 13.0 build of torch): mlbench-worker and the workflow steps" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="mlbench" \
      org.opencontainers.image.base.name="docker.io/nvidia/cuda:13.0.2-base-ubuntu24.04"
# UID/GID 1000 as the run pods set it (Ubuntu's images give 1000 to a user `ubuntu`: removed), with
# a writable HOME: torch and the tokenizers write caches there. Data sets go to /data
# (MLBENCH_DATA_DIR; the pods mount the shared volume there).
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && if getent group ubuntu >/dev/null; then groupdel ubuntu; fi \
    && groupadd --gid 1000 mlbench \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlbench \
       --shell /usr/sbin/nologin mlbench \
    && install -d -o 1000 -g 1000 -m 0750 /data
COPY --from=builder /opt/venv /opt/venv
ENV HOME=/home/mlbench \
    MLBENCH_DATA_DIR=/data \
    MLBENCH_GIT_COMMIT="${REVISION}"
USER 1000:1000
WORKDIR /home/mlbench
EXPOSE 29500
# A batch process: Kubernetes watches the pod, and no endpoint would say more than "running".
HEALTHCHECK NONE
# Replaces the base image's entrypoint (NVIDIA's banner script) and its CMD.
ENTRYPOINT ["mlbench-worker"]
CMD []
