FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
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
