# syntax=docker/dockerfile:1.7
# The image every Kubeflow task runs in (kubeflow/runner.py names it), and the
# SDK container for Beam workers on Dataflow/Flink/Spark (docs/kubeflow.md).
#
#   docker build -t tfx-generalize:0.1.0 .
#
# Same lock file as local installs (scripts/setup.sh): requirements.lock,
# installed with `uv pip sync`. tests/test_kubeflow_image.py runs the two `uv`
# steps below, verbatim, in a clean virtualenv.

ARG PYTHON_VERSION=3.10
ARG UV_VERSION=0.13.9
# Must match apache-beam in requirements.lock: the boot binary and the SDK
# talk a versioned protocol.
ARG BEAM_VERSION=2.59.0

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv
FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam

FROM python:${PYTHON_VERSION}-slim-bookworm

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UV_PYTHON=python3.10 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PYTHONUNBUFFERED=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

COPY --from=uv /uv /usr/local/bin/uv
# Beam's worker entrypoint, so this image can be the workers' SDK container.
COPY --from=beam /opt/apache/beam /opt/apache/beam

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app

WORKDIR /opt/app

# 1. Dependencies alone: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv "$VIRTUAL_ENV" && \
    uv pip sync --python "$VIRTUAL_ENV/bin/python" requirements.lock

# 2. The project, as a regular (non-editable) package; the lock already holds
#    every dependency, so nothing is resolved again.
COPY pyproject.toml ./
COPY core ./core
COPY pipeline ./pipeline
COPY components ./components
COPY kubeflow ./kubeflow
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python "$VIRTUAL_ENV/bin/python" --no-deps .

USER app
# Not /opt/app: tasks import the installed package, never the source copy.
WORKDIR /home/app

# KFP overrides this with the spec's command (python -m tfx...run_executor);
# Dataflow and portable Beam runners start workers through it.
ENTRYPOINT ["/opt/apache/beam/boot"]
