# HotSpot server / worker image. Build: docker build -t hotspot .
# The same image runs the API (`hotspot serve`, the default) and the workers
# (`hotspot worker all`); docker-compose.yml wires both to PostgreSQL, Redis and RabbitMQ.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOTSPOT_DATA_DIR=/var/lib/hotspot

RUN useradd --system --create-home --uid 10001 hotspot \
    && mkdir -p /var/lib/hotspot \
    && chown hotspot:hotspot /var/lib/hotspot

WORKDIR /app

# Only what the package needs (see .dockerignore); tests, docs and tools stay out.
COPY pyproject.toml README.md ./
COPY config ./config
COPY server ./server
COPY handlers ./handlers
COPY channels ./channels
COPY storage ./storage
COPY workers ./workers
COPY jobs ./jobs
RUN pip install . && hotspot --help >/dev/null

USER hotspot
VOLUME ["/var/lib/hotspot"]
EXPOSE 8080

# Liveness only; readiness (database, Redis, RabbitMQ) is GET /ready.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"

# aiohttp handles SIGTERM: sockets are told, pools drained, then the process exits.
STOPSIGNAL SIGTERM
CMD ["hotspot", "serve", "--host", "0.0.0.0"]
