# mlbench dashboard: the Bokeh server apps (Runs, Run, Compare, Nodes) over a master's REST API
# (`python -m bokeh_app.server`). Point it at the master with MLBENCH_API_URL and give it
# MLBENCH_ADMIN_TOKEN to start and stop runs. Build from the repository root:
# `make image-dashboard`.
#
# Base image and builder stage: the same as master.Dockerfile (tests/docker keeps them equal, so
# the three python images share the builder's layer cache); see there for the digest.
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
LABEL org.opencontainers.image.title="mlbench-dashboard" \
      org.opencontainers.image.description="mlbench dashboard: Bokeh server apps over the master's REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="mlbench" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.16-slim-bookworm"
# UID/GID 1000 as the Helm chart sets it. The dashboard writes nothing (the root filesystem may be
# read-only); it keeps no state of its own.
RUN groupadd --gid 1000 mlbench \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/mlbench \
       --shell /usr/sbin/nologin mlbench
COPY --from=builder /opt/venv /opt/venv
ENV HOME=/home/mlbench \
    MLBENCH_DASHBOARD_HOST=0.0.0.0 \
    MLBENCH_DASHBOARD_PORT=5006 \
    MLBENCH_GIT_COMMIT="${REVISION}"
USER 1000:1000
WORKDIR /home/mlbench
EXPOSE 5006
# /healthz answers without opening a Bokeh session (bokeh_app/server.py); the chart probes it too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5006/healthz', timeout=4)"]
CMD ["python", "-m", "bokeh_app.server"]
