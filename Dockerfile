# syntax=docker/dockerfile:1
# orderstream worker image. Default target (the last stage, `runtime`): the poller
# (`worker run`), small and Python-only. `docker build --target fleet .` builds the
# fleet-mode image instead: the same plus a Java runtime and the KCL jars (`worker kcl run`).
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---- build: a virtual environment with the project and its runtime dependencies ----
# Dependencies come only from requirements.lock (`make lock`: pinned, with hashes, the
# build backend included); the project itself is then installed with no dependency
# resolution and no build isolation, so nothing unpinned is downloaded.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY writer ./writer
COPY worker ./worker
RUN python -m venv /opt/orderstream \
 && /opt/orderstream/bin/pip install --no-compile --require-hashes --only-binary=:all: -r requirements.lock \
 && /opt/orderstream/bin/pip install --no-compile --no-deps --no-build-isolation . \
 && /opt/orderstream/bin/python -m compileall -q /opt/orderstream/lib

# ---- runtime: no compilers, no build files, a non-root user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 orderstream \
 && useradd --system --uid 10001 --gid orderstream --no-create-home --shell /usr/sbin/nologin orderstream
COPY --from=build /opt/orderstream /opt/orderstream
ENV PATH=/opt/orderstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ORDERSTREAM_LOG_FORMAT=json \
    ORDERSTREAM_HTTP_PORT=8080
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# Probes /healthz where ORDERSTREAM_HTTP_HOST and ORDERSTREAM_HTTP_PORT put it (an image run
# with another port stays healthy); with the port 0 (endpoint off) it succeeds, and a dead
# worker is seen by its exit (worker/ops/probe.py).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-m", "worker.ops.probe"]
ENTRYPOINT ["worker"]
CMD ["run"]

# ---- fleet-build: the Java shim and amazon-kclpy (whose sdist build needs the jars) ----
FROM build AS fleet-build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends maven openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
COPY kcl ./kcl
RUN mvn -q -B -f kcl/pom.xml package \
 && PIP=/opt/orderstream/bin/pip sh kcl/install-kclpy.sh

# ---- fleet: runtime + a Java runtime + the shim's classpath; still non-root ----
FROM runtime AS fleet
USER 0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
COPY --from=fleet-build /opt/orderstream /opt/orderstream
COPY --from=fleet-build /src/kcl/target/lib /opt/orderstream/kcl/lib
# Fleet mode serves no HTTP endpoints: KCL's leases move a dead worker's shards, and the
# orchestrator restarts a container whose `worker kcl run` exited.
ENV ORDERSTREAM_KCL_JARS=/opt/orderstream/kcl/lib \
    ORDERSTREAM_HTTP_PORT=0
HEALTHCHECK NONE
USER 10001:10001
CMD ["kcl", "run"]

# The default target: the last stage is what a plain `docker build .` produces.
FROM runtime
