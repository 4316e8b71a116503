# syntax=docker/dockerfile:1
# Switchyard image: one image for web processes (daphne) and RQ workers.

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml constraints.txt README.md ./
COPY project ./project
COPY orchestration ./orchestration
COPY chat ./chat
COPY agents ./agents
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install -c constraints.txt .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=project.settings \
    SWITCHYARD_VAR_DIR=/var/lib/switchyard
RUN groupadd --system switchyard && useradd --system --gid switchyard --home /app switchyard \
 && mkdir -p /var/lib/switchyard && chown switchyard:switchyard /var/lib/switchyard
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=switchyard:switchyard . /app
# collectstatic needs settings, and settings need a secret: a throwaway one, for this step only.
RUN SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput
USER switchyard
EXPOSE 8000
# Web: daphne with an HTTP timeout above the longest app deadline and WebSocket pings well
# below a proxy's idle timeout. Workers override the command (see docker-compose.yml).
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--http-timeout", "660", "--ping-interval", "20", \
     "--ping-timeout", "30", "--application-close-timeout", "30", "--proxy-headers", "project.asgi:application"]
