# crypto-mine images: one target per service, built from the repository root.
#   docker build --target api --build-arg SERVICE_DIR=services/api -t crypto-mine-api .
# Targets and their SERVICE_DIR: api (services/api), worker (services/worker), id-allocator
# (services/id-allocator), operator (operator). `make images` builds all four (scripts/images.sh).
# Only services/common, services/pipeline (for a service that depends on crypto-mine-pipeline)
# and the service's folder go into an image; third-party packages come from the service's
# requirements.lock, exported from uv.lock with hashes (`make lock`).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE_DIR
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN test -n "${SERVICE_DIR}" || { echo "--build-arg SERVICE_DIR is required (e.g. services/api)" >&2; exit 1; } \
    && python -m venv /opt/venv && python -m venv /opt/build
COPY build-requirements.lock /tmp/build-requirements.lock
COPY ${SERVICE_DIR}/requirements.lock /tmp/requirements.lock
# A CA bundle of the build host's, for a package index behind a TLS-inspecting proxy: a build
# secret, so it never lands in a layer. Every package is pinned by hash, the build backend too.
RUN --mount=type=secret,id=pip-ca,required=false \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && /opt/build/bin/pip install --require-hashes --no-deps -r /tmp/build-requirements.lock \
    && /opt/venv/bin/pip install --no-compile --require-hashes --no-deps -r /tmp/requirements.lock
COPY services/common /src/common
COPY services/pipeline /src/pipeline
COPY ${SERVICE_DIR} /src/service
# The click pipeline goes in only where the service declares it (not the id-allocator). The
# runtime keeps no pip or setuptools; bytecode is keyed by the source's hash, not its time, so
# the same sources give the same files.
RUN set -- /src/common \
    && if grep -q '"crypto-mine-pipeline"' /src/service/pyproject.toml; then set -- "$@" /src/pipeline; fi \
    && /opt/build/bin/pip wheel --no-build-isolation --no-deps --wheel-dir /tmp/wheels \
       "$@" /src/service \
    && /opt/venv/bin/pip install --no-compile --no-deps /tmp/wheels/*.whl \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && python -m compileall -q --invalidation-mode unchecked-hash /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
# Bytecode is compiled at build time and logs go to stdout: the root filesystem can be read-only.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
# Last, so that a new revision changes the image's metadata only, not a layer.
ARG VERSION=0.0.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/crypto-mine/crypto-mine" \
      org.opencontainers.image.vendor="crypto-mine" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

FROM runtime AS api
LABEL org.opencontainers.image.title="crypto-mine-api"
# With WEB_CONCURRENCY > 1 the processes share metric samples through PROMETHEUS_MULTIPROC_DIR,
# which the chart points at an emptyDir under /tmp.
ENV HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
CMD ["crypto-mine-api"]

FROM runtime AS worker
LABEL org.opencontainers.image.title="crypto-mine-worker"
# The worker processes share metric samples through PROMETHEUS_MULTIPROC_DIR; the chart mounts
# an emptyDir at /tmp.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    WORKER_METRICS_PORT=9100
EXPOSE 9100
CMD ["crypto-mine-worker"]

FROM runtime AS id-allocator
LABEL org.opencontainers.image.title="crypto-mine-id-allocator"
ENV HOST=0.0.0.0 \
    PORT=8081
EXPOSE 8081
CMD ["crypto-mine-id-allocator"]

FROM runtime AS operator
LABEL org.opencontainers.image.title="crypto-mine-operator"
# 8000: Prometheus metrics (METRICS_PORT); 8080: kopf's liveness endpoint (/healthz).
EXPOSE 8000 8080
CMD ["crypto-mine-operator"]
