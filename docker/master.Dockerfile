# mlbench master: REST API, storage and executors (`mlbench serve`), without the dashboard
# (that is the mlbench/dashboard image). Build from the repository root: `make image-master`.
#
# Base image: exact version tag AND the multi-platform index digest that docker-library/repo-info
# recorded for it (repos/python/remote/3.11.16-slim-bookworm.md). To move to a newer build, take
# the digest from `docker buildx imagetools inspect python:3.11.16-slim-bookworm` (the "Digest:"
# line) and replace it in all three python images' Dockerfiles together.
FROM python:3.11.16-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f AS base
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# ---- builder: the project's wheel and every dependency, pinned, in a venv ---------------------
FROM base AS builder
# torch is the CPU build, from PyTorch's CPU index (PyPI's linux wheel is the CUDA build, GBs
# larger); the version is constraints.txt's pin (tests/docker checks that).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv
# Dependencies before the sources, so that a code change does not reinstall them.
COPY docker/requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}+cpu" \
    && pip install --no-cache-dir --requirement /tmp/requirements.lock
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
LABEL org.opencontainers.image.title="mlbench-master" \
      org.opencontainers.image.description="mlbench master: REST API, run storage and executors (mlbench serve)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="mlbench" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm"
# UID/GID 1000 as the Helm chart and the run pods set it. /data holds the SQLite database (unless
# MLBENCH_DATABASE_URL names PostgreSQL), the admin token and run logs: mount a volume there.
# Nothing else is written but /tmp, so the root filesystem may be read-only.
RUN groupadd --gid 1000 mlbench \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlbench \
       --shell /usr/sbin/nologin mlbench \
    && install -d -o 1000 -g 1000 -m 0750 /data
COPY --from=builder /opt/venv /opt/venv
ENV HOME=/home/mlbench \
    MLBENCH_DATA_DIR=/data \
    MLBENCH_GIT_COMMIT="${REVISION}"
USER 1000:1000
WORKDIR /home/mlbench
EXPOSE 8000
# /api/v1/health: 200 while the master and its database respond (master/api/routes/health.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4)"]
CMD ["mlbench", "serve", "--host", "0.0.0.0", "--port", "8000", "--dashboard-port", "0"]
