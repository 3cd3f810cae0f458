# The Python the tests and CI run on (3.11.7), on a pinned Debian release.
FROM python:3.11.7-slim-bookworm
WORKDIR /app
# CJK glyphs for /trend charts (matplotlib finds them through fontconfig). tini runs as PID 1:
# the kernel gives PID 1 no default signal actions, so a Python PID 1 ignored `docker stop`
# until bot.py had imported and installed its handler (seconds), then was killed after 10 s.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk tini \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock .
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.lock
COPY . .
# A fixed uid, so a bind-mounted data folder can be given to it: chown 10001 ./data
RUN useradd --uid 10001 --user-group --create-home tidings \
    && mkdir -p /app/data && chown tidings:tidings /app/data
USER 10001
VOLUME ["/app/data"]
STOPSIGNAL SIGTERM
# The bot touches data/heartbeat every 30 s once its database answers; stale means unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import os,sys,time; sys.exit(time.time() - os.path.getmtime('/app/data/heartbeat') > 120)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/app/.venv/bin/python", "bot.py"]
