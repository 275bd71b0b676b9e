# syntax=docker/dockerfile:1.7
#
# One image for all four Sotong services. The service is the command:
#   docker build -t sotong .
#   docker run --rm -p 8002:8002 -e SOTONG_KAFKA_BOOTSTRAP_SERVERS=... -e SOTONG_MONGO_URI=... sotong routing
# The image holds the runtime dependencies only: neither the `local` group (embedded
# Kafka/MongoDB for one machine) nor `dev` (tests, linters). See deploy/README.md.

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS builder

COPY --from=uv /uv /usr/local/bin/uv

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PROJECT_ENVIRONMENT=/opt/sotong/venv

WORKDIR /src

# Locked dependencies first: this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-dev --no-install-project

# Then the source, installed as a regular (non-editable) wheel into the same venv, with
# its data files (routing/data, notifier/templates). --reinstall-package: uv would
# otherwise reuse a wheel of the same version from the cache mount, built from old source.
COPY README.md ./
COPY schemas ./schemas
COPY services ./services
COPY intake ./intake
COPY routing ./routing
COPY tracker ./tracker
COPY notifier ./notifier
COPY sotong ./sotong
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-default-groups --no-dev --no-editable --reinstall-package sotong

# ---------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

LABEL org.opencontainers.image.title="sotong" \
      org.opencontainers.image.description="Sotong complaint workflow: intake, routing, tracker, notifier" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so Kubernetes can verify runAsNonRoot. /var/lib/sotong holds
# the notifier's outbox (a volume in compose, an emptyDir in Kubernetes).
RUN groupadd --system --gid 10001 sotong \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sotong \
        --no-create-home --shell /usr/sbin/nologin sotong \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/sotong

COPY --from=builder /opt/sotong/venv /opt/sotong/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/sotong-healthcheck

ENV PATH=/opt/sotong/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOTONG_INTAKE_HTTP_HOST=0.0.0.0 \
    SOTONG_ROUTING_HTTP_HOST=0.0.0.0 \
    SOTONG_TRACKER_HTTP_HOST=0.0.0.0 \
    SOTONG_NOTIFIER_HTTP_HOST=0.0.0.0 \
    SOTONG_PORTAL_HTTP_HOST=0.0.0.0 \
    SOTONG_NOTIFIER_OUTBOX_PATH=/var/lib/sotong/outbox.jsonl

WORKDIR /var/lib/sotong
USER 10001:10001

# intake, routing, tracker, notifier, portal (SOTONG_<SERVICE>_HTTP_PORT changes them).
EXPOSE 8001 8002 8003 8004 8005

# Liveness of whichever service PID 1 runs; readiness (/readyz) is the orchestrator's.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "/usr/local/bin/sotong-healthcheck", "/healthz"]

ENTRYPOINT ["sotong", "run"]
CMD ["intake"]
