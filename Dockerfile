# leadml API and job worker in one container: `docker build -t leadml .` then
#   docker run -p 8001:8001 -e SECRET_KEY=... -e ALLOWED_HOSTS=leadml.example.com \
#       -e DATABASE_URL=postgres://... [-e REDIS_URL=redis://...] -v leadml-var:/app/var leadml
# Without DATABASE_URL the SQLite database and the model artifacts live in /app/var:
# mount a volume there to keep them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1: it passes `docker stop`'s SIGTERM on and reaps orphaned processes, which
# a Python PID 1 would not do for processes it did not start.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system leadml \
    && useradd --system --gid leadml --home-dir /app --no-create-home --shell /usr/sbin/nologin leadml

WORKDIR /app

# Requirements before the code, so code changes do not reinstall them. All pins have
# manylinux wheels; no compiler needed.
COPY requirements.txt .
RUN pip install --upgrade pip && pip install -r requirements.txt

COPY . .
# The C tree walks (leadml/ml/native.py), compiled in a throwaway layer step: the compiler
# is removed in the same RUN, so the image keeps only the library.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && python -m leadml.ml.native \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

ENV DJANGO_SETTINGS_MODULE=leadml.settings.production \
    LEADML_VAR_DIR=/app/var \
    HOST=0.0.0.0 \
    PORT=8001

# Production settings refuse to load without SECRET_KEY and ALLOWED_HOSTS. These
# placeholders are set for this one command only (no ENV: they are not in the running
# container's environment); the real values are given at `docker run`. collectstatic
# writes to /app/var/static: a named volume at /app/var starts as a copy of it.
ARG COLLECTSTATIC_SECRET_KEY=collectstatic-only-not-a-real-secret
RUN SECRET_KEY="$COLLECTSTATIC_SECRET_KEY" ALLOWED_HOSTS=localhost \
        python manage.py collectstatic --noinput \
    && mkdir -p /app/var/models \
    && chown -R leadml:leadml /app/var

# The code stays root-owned and read-only to the service; only /app/var is writable.
USER leadml

EXPOSE 8001

ENTRYPOINT ["tini", "--"]
# `exec`: `serve` replaces the shell, so the SIGTERM of `docker stop` reaches it and it
# stops gunicorn and the job worker in order; a shell would just die and leave them.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve --host 0.0.0.0 --port ${PORT:-8001}"]
