FROM python:3.12-slim
WORKDIR /app
COPY requirements.lock .
RUN python -m venv /app/.venv && /app/.venv/bin/pip install --no-cache-dir -r requirements.lock
COPY . .
RUN useradd --create-home tidings && mkdir -p /app/data && chown tidings /app/data
USER tidings
STOPSIGNAL SIGTERM
CMD ["/app/.venv/bin/python", "bot.py"]
