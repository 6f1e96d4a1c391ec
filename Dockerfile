# dicom-node image.
#
#   GPU hosts (default): docker build -t dicom-node .
#       PyTorch's CUDA wheels bring their own CUDA runtime; the host needs the NVIDIA driver
#       and the NVIDIA container toolkit (docker run --gpus all ...).
#   CPU only:            docker build --build-arg TORCH_VARIANT=cpu -t dicom-node:cpu .
#
# Configuration: mount a YAML file and set DICOM_NODE_CONFIG, or set DICOM_NODE_* variables.
# The store and the SQLite database live in the /var/lib/dicom-node volume.
# NOTE: this image has not been built in the project's CI (no Docker engine there);
# docker-compose.yml shows the scale-out topology (Orthanc, node, PostgreSQL, Redis, GPU worker);
# tests/test_dockerfile.py checks its structure.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY config ./config
COPY storage ./storage
COPY inference ./inference
COPY dicom_node ./dicom_node
# the package itself is the local source; its dependencies have lower bounds in setup.cfg
# hadolint ignore=DL3013
RUN pip install ".[postgres,celery]"

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="dicom-node" \
      org.opencontainers.image.description="AI DICOM node for spine MRI (research use only)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 dicomnode \
 && useradd --system --uid 10001 --gid dicomnode --home-dir /var/lib/dicom-node dicomnode \
 && mkdir -p /var/lib/dicom-node \
 && chown dicomnode:dicomnode /var/lib/dicom-node
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DICOM_NODE_STORAGE_DIR=/var/lib/dicom-node \
    DICOM_NODE_PORT=11112 \
    DICOM_NODE_HTTP_PORT=8080
USER 10001:10001
WORKDIR /var/lib/dicom-node
VOLUME ["/var/lib/dicom-node"]
EXPOSE 11112 8080
# /healthz is the node's liveness endpoint (dicom_node/ops); the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DICOM_NODE_HTTP_PORT', '8080'), timeout=5)"]
ENTRYPOINT ["dicom-node"]
CMD ["serve"]
