FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
COPY bff ./bff
COPY templates ./templates
COPY static ./static
# Install the pinned runtime set, then bff itself as a regular (non-editable) package.
RUN pip install --no-cache-dir -r requirements.lock \
    && pip install --no-cache-dir --no-deps . \
    && rm -rf /app/bff /app/templates /app/static

RUN useradd --create-home --uid 10001 bff && mkdir -p /data && chown bff /data
USER bff
WORKDIR /data
ENV BFF_DATABASE_URL=sqlite:////data/bff.db

EXPOSE 8000
# bff serve finishes requests in flight for up to 25 s after SIGTERM: give it
# `docker stop -t 30` (or a 30 s grace period). Several instances: set
# BFF_DATABASE_URL (PostgreSQL) and BFF_REDIS_URL, run `bff migrate` once per
# release (the same image, command `bff migrate`), and add `--workers N` per core.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"]
CMD ["bff", "serve", "--host", "0.0.0.0", "--port", "8000"]
