# mailsink: a local SMTP test sink and inspector.
#   docker build -t mailsink .
#   docker run --rm -p 1025:1025 -p 8025:8025 mailsink
# Configuration: the MAILSINK_* environment variables of `mailsink serve` (README).

# -- build: the wheel and its dependencies into a virtualenv --------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mailsink
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sink ./sink
COPY probe ./probe
COPY templates ./templates
RUN /opt/mailsink/bin/pip install --no-cache-dir /src

# -- run: the virtualenv only, as an unprivileged user --------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 mailsink \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
       --home-dir /nonexistent --shell /usr/sbin/nologin mailsink \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/mailsink /opt/mailsink
ENV PATH=/opt/mailsink/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MAILSINK_LISTEN=0.0.0.0 \
    MAILSINK_SMTP_PORT=1025 \
    MAILSINK_HTTP_PORT=8025 \
    MAILSINK_DB=/data/mailsink.db
VOLUME ["/data"]
# Numeric, so that runAsNonRoot-style checks can tell it is not root.
USER 10001:10001
EXPOSE 1025 8025
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["mailsink", "healthcheck"]
ENTRYPOINT ["mailsink"]
CMD ["serve"]
