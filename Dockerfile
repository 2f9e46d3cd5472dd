# Skiff in one image: every component is a `skiff` subcommand (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . .
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /var/lib/skiff skiff \
 && mkdir -p /var/lib/skiff \
 && chown skiff:skiff /var/lib/skiff

USER skiff
WORKDIR /var/lib/skiff
ENTRYPOINT ["skiff"]
CMD ["--help"]
