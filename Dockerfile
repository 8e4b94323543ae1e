# db-init-job: the one-shot container that brings the app's database to its schema before the app starts.
#
#   docker build -t db-init-job .
#   docker run --rm -e DATABASE_URL=postgresql://... db-init-job          # = db-init run
#   docker run --rm -e DATABASE_URL=postgresql://... db-init-job plan     # what run would do
#
# BASE is any Debian-based image with Python >= 3.11 and venv (CI builds on a local stand-in,
# tests/container/build-base.sh). Both stages must use the same BASE: the venv links to its python.
ARG BASE=python:3.12-slim

# --- build: a venv holding the job and its dependencies, from wheels only (no compiler) -------------
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first, exactly as locked (versions and sha256 of every wheel): this layer stays cached while
# the code changes, and the image holds what was reviewed, nothing newer. `requirements.lock` is made from
# pyproject.toml by pip-compile --generate-hashes (README, "Development").
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --only-binary=:all: --require-hashes \
        -r requirements.lock
COPY pyproject.toml README.md ./
COPY job/ job/
# The job itself; then pip goes (nothing installs at run time), and every module is compiled once,
# with hash-checked-never .pyc files: valid whatever the file times, never rewritten at run time.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools wheel \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

# --- final: the base, the venv and the migrations; no compiler, no pip, no caches, no secrets ------
FROM ${BASE}
LABEL org.opencontainers.image.title="db-init-job" \
      org.opencontainers.image.description="Waits for PostgreSQL, takes Prisma's migration lock, applies the baseline and the Session fix, keeps _prisma_migrations consistent, exits with a documented code."
# A numeric user with no home and no shell: what Kubernetes' runAsNonRoot can check without a passwd lookup,
# and what libpq finds in /etc/passwd when a URL names no user.
RUN groupadd --system --gid 10001 dbinit \
 && useradd --system --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin dbinit
COPY --from=build /opt/venv /opt/venv
# prisma/ is the contract and the migrations, read from the working directory (README, "The migrations folder").
WORKDIR /app
COPY prisma/ prisma/
# Compile the standard-library modules the job imports, so that a run on a read-only root file system
# never compiles at start-up (official python images ship the standard library without .pyc files).
RUN /opt/venv/bin/python -c "import importlib, pkgutil, job; [importlib.import_module(m.name) for m in pkgutil.walk_packages(job.__path__, 'job.') if m.name not in ('job.__main__', 'job.demo')]"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# PID 1 is the job itself. `python -m job` installs its SIGTERM/SIGINT handlers before any heavy import (a
# signal with no handler never reaches PID 1); on a signal it rolls back, releases the lock and exits 7.
# It starts no child process, so there is nothing to reap and no init is needed. -P: nothing from the
# working directory shadows the installed package.
ENTRYPOINT ["/opt/venv/bin/python", "-P", "-m", "job"]
CMD ["run"]
