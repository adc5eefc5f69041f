# syntax=docker/dockerfile:1
#
# clickstream-worker images (BuildKit; Docker >= 23 uses it by default).
#
#   docker build -t clickstream-worker .                                   # the worker (default target)
#   docker build --target devkit -t clickstream-devkit .   # development kit: the local Personalize (default), generate, dev
#
# Stages:
#   builder            builds the two wheels (clickstream-worker, the production package; and
#                      clickstream-devkit, the development kit) and a wheelhouse of every runtime
#                      dependency, pinned by deploy/docker/constraints.txt (the versions the tests ran with)
#   runtime-base       python:3.11-slim, an empty virtualenv (no pip in it) and the non-root user
#   devkit             clickstream-devkit (+ numpy): the local Personalize by default, also `generate`;
#                      NOT for production
#   worker             clickstream-worker with the `msk` extra only; the last stage, so the default.
#                      The development kit is not in it: its CLI has no dev/generate/local-personalize.
#
# The runtime stages install from the wheelhouse through a bind mount, so no wheel, source file,
# compiler or build tool is copied into them: the final image holds the interpreter, the
# virtualenv and the shipped Avro schemas, nothing else.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas/ schemas/
COPY worker/ worker/
COPY devkit/ devkit/
RUN pip wheel --no-deps --wheel-dir /dist . ./devkit

# Every runtime dependency of both images as wheels (binary wheels preferred: the slim builder has
# no compiler, so a dependency without a wheel for the platform fails here, loudly, not at run time).
COPY deploy/docker/constraints.txt /tmp/constraints.txt
RUN pip wheel --prefer-binary --wheel-dir /wheels --find-links /dist --constraint /tmp/constraints.txt \
        "$(ls /dist/clickstream_worker-*.whl)[msk]" "$(ls /dist/clickstream_devkit-*.whl)"

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime-base

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="clickstream-worker" \
      org.opencontainers.image.description="Kafka clickstream to Amazon Personalize (PutEvents/PutItems/PutUsers)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric UID/GID: Kubernetes can only verify runAsNonRoot for a numeric USER.
RUN groupadd --system --gid 10001 clickstream \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin clickstream \
 && python -m venv --without-pip /opt/venv

# The default Avro schemas come with the wheel (data files in <venv>/share/clickstream-worker/schemas).

# ---------------------------------------------------------------------------------------------
FROM runtime-base AS devkit

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip --python /opt/venv/bin/python install --no-index --find-links /wheels clickstream-devkit \
 && mkdir -p /data && chown 10001:10001 /data

ENV PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8765/_local/health', timeout=4)"]
ENTRYPOINT ["clickstream-worker", "local-personalize"]
CMD ["--host", "0.0.0.0", "--port", "8765", "--data-dir", "/data"]

# ---------------------------------------------------------------------------------------------
FROM runtime-base AS worker

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip --python /opt/venv/bin/python install --no-index --find-links /wheels "clickstream-worker[msk]"

# Bytecode was compiled at install time; at run time the root filesystem may be read-only.
ENV PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
EXPOSE 9108
# No curl in the image: the probe is the interpreter itself. The port follows the same
# override the worker reads (WORKER_OBSERVABILITY__HTTP_PORT); set it there if the YAML changes it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WORKER_OBSERVABILITY__HTTP_PORT', '9108') + '/healthz', timeout=4)"]
ENTRYPOINT ["clickstream-worker", "run"]
CMD ["--config", "/etc/clickstream-worker/worker.yaml"]
