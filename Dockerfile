FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# postgresql-client: pg_dump/pg_restore for `manage.py backup` / `restore`. The distribution's
# (15 on bookworm, 17 on trixie) is never older than the compose server (15), which pg_dump needs.
RUN apt-get update && apt-get install -y --no-install-recommends g++ postgresql-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY principles ./principles
COPY moderation ./moderation
COPY reports ./reports
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --create-home safeguard && mkdir -p /data && chown safeguard /data
USER safeguard
EXPOSE 8000
