# syntax=docker/dockerfile:1
# Tessera's one image, for every process (DESIGN.md section 1): the command is the argument.
#
#   docker run IMAGE                  -> tessera server   (core: HTTP 9000, metrics 9300)
#   docker run IMAGE worker           -> tessera worker   (maintenance, metrics 9300)
#   docker run IMAGE outpost proxy    -> tessera outpost proxy   (HTTP 9000, HTTPS 9443)
#   docker run IMAGE outpost ldap     -> tessera outpost ldap    (LDAP 3389, LDAPS 6636)
#   docker run IMAGE operator         -> tessera operator
#   docker run IMAGE migrate | healthcheck | admin create-recovery-key 10 akadmin | --help
#
# Build: `docker build -t tessera .` from the repository root. tests/test_dockerfile.py checks this
# file's shape and builds the wheel exactly as the builder stage does (no Docker engine needed).

# --- builder: build the wheel, install it and its dependencies into a virtual environment -------
FROM python:3.11-slim AS builder

ENV PYTHONSAFEPATH=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The venv keeps this path in the final stage: virtual environments are not relocatable.
RUN python -m venv /opt/tessera

WORKDIR /src
# The dependencies, exactly as locked and hash-checked (`make lock`): the runtime into the venv,
# the build backend for the wheel below. A layer of their own, rebuilt only when a lock changes.
COPY requirements.lock requirements-build.lock ./
RUN python -m pip install --require-hashes -r requirements-build.lock \
 && /opt/tessera/bin/python -m pip install --require-hashes -r requirements.lock

# The context is filtered by .dockerignore (no .git, .venv, build/, data/, tests, caches).
COPY . .

# setup.py maps core/, operator/ and outposts/ onto tessera.*; setuptools refuses a mapping whose
# folder is missing, and git does not keep empty folders, so create them while they are empty.
# A normal (not editable) wheel: package data (Alembic migrations, *.mako, py.typed) is included.
# No build isolation and no dependencies: only what the lock files installed above is used.
RUN mkdir -p operator outposts \
 && python -m pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/tessera/bin/python -m pip install --no-deps /wheels/tessera-*.whl

# --- final: the runtime only, the venv copied in, running as an unprivileged user ---------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="Tessera" \
      org.opencontainers.image.description="Identity provider and single sign-on, compatible with authentik" \
      org.opencontainers.image.licenses="Apache-2.0"

# uid/gid 1000, numeric in USER below so that Kubernetes' runAsNonRoot can verify it.
# /data holds the embedded SQLite database and the generated secret key file (mode 0600): it is
# owned by that user and closed to others.
RUN groupadd --gid 1000 tessera \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /data --shell /usr/sbin/nologin tessera \
 && mkdir -p /data \
 && chown 1000:1000 /data \
 && chmod 0700 /data

COPY --from=builder /opt/tessera /opt/tessera

# Settings (core/config): `TESSERA_*` outranks `AUTHENTIK_*`, so an `AUTHENTIK_LISTEN__*` given at
# `docker run` replaces these defaults, and `TESSERA_DATA_DIR` can only be changed by that name.
# PYTHONSAFEPATH=1: the working directory never goes on sys.path (a folder named `operator` must
# not shadow the standard library; see ARCHITECTURE.md).
ENV PATH="/opt/tessera/bin:${PATH}" \
    PYTHONSAFEPATH=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTHENTIK_LISTEN__HTTP=0.0.0.0:9000 \
    AUTHENTIK_LISTEN__METRICS=0.0.0.0:9300 \
    TESSERA_DATA_DIR=/data

VOLUME ["/data"]
WORKDIR /data

# 9000 HTTP and 9300 metrics (core, worker metrics, outposts); 9443 HTTPS (proxy outpost; the core
# has no HTTPS listener yet); 3389 LDAP and 6636 LDAPS (LDAP outpost, planned).
EXPOSE 9000 9300 9443 3389 6636

USER 1000:1000

# GETs http://127.0.0.1:9000/-/health/live/ (core/cli: cmd_healthcheck). A `worker` has no HTTP
# listener: give its container `tessera healthcheck --url http://127.0.0.1:9300/metrics` instead
# (compose `healthcheck.test`, as docker-compose.yml does, or a Kubernetes probe), and so for the
# outposts and the operator.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["tessera", "healthcheck"]

# Exec form: the arguments of `docker run IMAGE ...` (or the Kubernetes `args`) reach the
# `tessera` command line unchanged (`outpost proxy`, `outpost ldap`, `operator`). `tessera` runs
# as PID 1 and handles SIGTERM and SIGINT itself once it is serving (core/app: _stopped); use
# `docker run --init` to also stop promptly during start-up migrations.
ENTRYPOINT ["tessera"]
CMD ["server"]
