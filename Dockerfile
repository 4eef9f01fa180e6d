# Footprint exporter image.
#
#   docker build -t footprint-exporter .
#   docker run --rm -p 10180:10180 footprint-exporter            # http://127.0.0.1:10180/metrics
#
# BASE_IMAGE must provide python3 (>= 3.10) with venv and pip; both stages use it, so the virtual
# environment copied into the runtime stage points at the same interpreter. The tests build on a local
# Debian base made with debootstrap (no image registry needed): --build-arg BASE_IMAGE=<that image>.
# In Kubernetes the exporter reads the host through read-only mounts (see helm/footprint); GPUs become
# visible through the NVIDIA container runtime (NVIDIA_VISIBLE_DEVICES), not through this image.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/footprint
WORKDIR /src
# Dependencies first, from the metadata alone (a stub package, removed again with setuptools' build
# directory, whose older-dated copies would otherwise shadow the real code), so a code change does not
# reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p exporter/footprint \
 && touch exporter/footprint/__init__.py \
 && /opt/footprint/bin/pip install --no-compile . \
 && /opt/footprint/bin/pip uninstall -y footprint-exporter \
 && rm -rf build exporter
# The optional C parts (setup.py: the meters' reader and the ledger's rule and additions, less CPU per
# sample) are built where the base has Python's headers (the official python images do): a compiler is
# added to this stage only, never to the runtime image. Without headers their pure-Python twins run.
RUN include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
 && if [ -f "$include/Python.h" ] && ! command -v cc >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*; \
    fi
COPY setup.py ./
COPY exporter/ exporter/
RUN /opt/footprint/bin/pip install --no-compile --no-deps . \
 && /opt/footprint/bin/python -m compileall -q /opt/footprint/lib \
 && /opt/footprint/bin/footprint-exporter version

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="footprint-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the energy and carbon emissions of ML machines (GPUs and CPUs)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/footprint-exporter/footprint"
# A fixed UID/GID that the Helm chart's securityContext uses too (runAsUser: 65532).
RUN groupadd --system --gid 65532 footprint \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin footprint
COPY --from=build /opt/footprint /opt/footprint
# Bytecode is compiled at build time; nothing is written at run time (read-only root filesystem).
ENV PATH=/opt/footprint/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 10180
ENTRYPOINT ["footprint-exporter"]
