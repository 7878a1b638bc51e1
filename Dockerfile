# One image for every dealwatch service: `docker run IMAGE worker ingest|api|web|detector|recovery|stats`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p schemas services dealwatch \
    && touch schemas/__init__.py services/__init__.py dealwatch/__init__.py \
    && pip install . \
    && pip uninstall -y dealwatch

COPY schemas ./schemas
COPY services ./services
COPY dealwatch ./dealwatch
# gcc compiles the cause lexicon's phrase scanner (services/detector/domain/causes/_scan.c), then goes again.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps . \
    && (cd / && python -c "from services.detector.domain.causes.text import NATIVE; assert NATIVE, 'no scanner'") \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin dealwatch \
    && mkdir -p /app/var \
    && chown dealwatch /app/var

USER dealwatch

# Listen on every interface inside the container; the database and broker come from the environment.
ENV DEALWATCH_HTTP_HOST=0.0.0.0 \
    DEALWATCH_HTTP_PORT=8080 \
    DEALWATCH_DATA_DIR=/app/var

EXPOSE 8080
ENTRYPOINT ["dealwatch"]
CMD ["--help"]
