# syntax=docker/dockerfile:1
# peakrec serving image. Stage 1 builds the wheel (Rust + maturin); stage 2 is a slim Python with
# only the wheel and its runtime dependencies, run as a non-root user. Bundles are mounted at
# /bundles (read-only is fine); live item state and the journal go to /var/lib/peakrec/state.
#
#   docker build -t peakrec .
#   docker run --rm -p 50051:50051 -p 9464:9464 -v "$PWD/bundles:/bundles:ro" peakrec
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path
RUN pip install --no-cache-dir "maturin>=1.7,<2"
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust rust
COPY python python
RUN maturin build --release --out /dist

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/peakrec/bin:$PATH
COPY --from=build /dist /dist
RUN python -m venv /opt/peakrec \
    && /opt/peakrec/bin/pip install --no-cache-dir /dist/*.whl \
    && rm -rf /dist \
    && groupadd --system --gid 10001 peakrec \
    && useradd --system --uid 10001 --gid peakrec --home-dir /var/lib/peakrec --create-home peakrec \
    && mkdir -p /bundles /var/lib/peakrec/state \
    && chown peakrec:peakrec /var/lib/peakrec/state
VOLUME ["/bundles", "/var/lib/peakrec/state"]
USER 10001:10001
# public gRPC, admin gRPC (loopback unless --admin-host and --admin-token are given), Prometheus
EXPOSE 50051 50052 9464
ENTRYPOINT ["peakrec"]
CMD ["serve", "--bundles", "/bundles", "--state-dir", "/var/lib/peakrec/state", \
     "--host", "0.0.0.0", "--metrics-host", "0.0.0.0", "--metrics-port", "9464", "--log-format", "json"]
