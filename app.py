"""Tidings: build settings, database and clients; register handlers and jobs; run.

bot.py launches it; the parser processes never import this module (see bot.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
from pydantic import ValidationError
from telegram import BotCommand, BotCommandScopeChat, Update
from telegram.ext import Application, ApplicationBuilder, ContextTypes

import hub_callback
import jobs
import receiver
from handlers import ADMIN_COMMANDS, READER_COMMANDS, all_handlers
from handlers.common import chat_language, reply
from handlers.lanes import ChatLanes
from handlers.ratelimit import CommandLimiter, RateLimit
from jobs.outbound import Outbound
from jobs.pacing import PACING
from locales import Catalog
from news.aliases import AliasFinder
from news.briefs import BriefWriter
from news.embeddings import Embedder
from news.fetch import FetchPolicy, make_client
from news.newsroom import Newsroom
from news.packs import DEFAULT_DIRECTORY, load_packs
from news.parsing import FeedReader, default_workers
from news.search import providers as search_providers
from news.search.sweep import Searching
from news.websub import PushSettings
from receiver import WebhookConfig, WebhookRefused
from services import KEY, Services
from settings import Settings
from storage import deliveries, locks, sources, websub
from storage.db import (
    DatabaseInUse,
    DatabaseUnreachable,
    check_clock,
    claim_sqlite,
    describe,
    make_engine,
    migrate,
    session_scope,
    url_secrets,
    wait_for_database,
)
from telegram_http import AiohttpRequest
from telegram_link import (
    DEFAULTS,
    NotTelegram,
    Outage,
    PatientApplication,
    RedactingFormatter,
    TokenRejected,
    WatchedRequest,
    keep_trying,
    polling_outage,
)

# Opt in to PTB's timedelta durations (RetryAfter.retry_after) instead of its deprecation path.
os.environ.setdefault("PTB_TIMEDELTA", "true")

log = logging.getLogger("tidings")
USER_AGENT = "Tidings/0.1 (+https://github.com/tidings-bot)"


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    # Belt and braces: whatever logs the token (a URL, a traceback), it never reaches a log.
    redact = RedactingFormatter(settings.telegram_bot_token.get_secret_value(), LOG_FORMAT,
                                (settings.webhook_secret.get_secret_value(),
                                 *url_secrets(settings.database_url)))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(redact)
    # httpx logs every request URL at INFO, and Telegram's URLs carry the token; openai's own
    # client (httpx2) logs a line per LLM call.
    for name in ("httpx", "httpcore", "httpx2", "httpcore2", "apscheduler", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)


def build_services(settings: Settings) -> Services:
    # The parser processes start first: they take seconds to import the parser, which they do
    # while the database is reached and migrated, so the first /addsource finds them ready.
    reader = FeedReader(default_workers() if settings.parse_workers is None
                        else settings.parse_workers, time_limit=settings.parse_timeout_seconds)
    reader.warm()
    engine = make_engine(settings.database_url)
    keys = locks.Keys.of(engine, settings.deployment_name)
    wait_for_database(engine)
    migrate(engine, keys)
    check_clock(engine)  # shared times are the database's; a host clock off them is warned of
    writer_client = None
    if settings.llm_enabled and settings.openai_api_key:
        # Our own code retries once; the client's retries would multiply with ours.
        writer_client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url, max_retries=0,
            timeout=settings.llm_timeout_seconds,
        )
    catalog = Catalog()
    newsroom = Newsroom(engine, keys)
    newsroom.embedding = settings.embeddings_enabled
    return Services(
        engine=engine,
        newsroom=newsroom,
        # A new sender waits out the longest pacing period (a group's): the previous one may
        # have sent to any chat until it died, and Telegram's limits count those sends too.
        sending=locks.Role(engine, keys.sending, "sending", settle=PACING.group_period),
        http=make_client(USER_AGENT),
        fetch_policy=FetchPolicy(settings.allowed_source_networks, settings.max_response_bytes,
                                 settings.fetch_timeout_seconds,
                                 public=settings.allow_public_networks),
        writer=BriefWriter(writer_client, settings.llm_model,
                           input_tokens=settings.llm_input_tokens,
                           concurrency=settings.llm_concurrency),
        aliases=AliasFinder(writer_client, settings.llm_model),
        embedder=embedder(settings),
        semantic_threshold=settings.semantic_threshold,
        catalog=catalog,
        admin_ids=settings.admin_ids,
        default_language=catalog.resolve(settings.default_language, "en")
        if catalog.has(settings.default_language, "start.welcome") else settings.default_language,
        poll_interval_seconds=settings.poll_interval_seconds,
        daily_token_budget=settings.llm_daily_token_budget,
        delivery_retention=timedelta(days=settings.delivery_retention_days)
        if settings.delivery_retention_days else None,
        full_text=settings.full_text,
        heartbeat_file=Path(settings.heartbeat_file) if settings.heartbeat_file else None,
        reader=reader,
        max_topics_per_chat=settings.max_topics_per_chat,
        paid_stars_per_day=settings.paid_broadcast_stars_per_day,
        paid_after_seconds=settings.paid_broadcast_after_seconds,
        asks=CommandLimiter(settings.asks_per_hour, period=3600.0)
        if settings.asks_per_hour else None,
        searching=searching(settings),
        packs=tuple(load_packs(Path(settings.starter_packs_dir) if settings.starter_packs_dir
                               else DEFAULT_DIRECTORY)),
        push=push_settings(settings),
    )


def embedder(settings: Settings) -> Embedder:
    """The embeddings endpoint semantic topics use: OPENAI_BASE_URL's provider and key, or
    EMBEDDING_BASE_URL's; offline without EMBEDDING_MODEL."""
    if not settings.embeddings_enabled or settings.openai_api_key is None:
        return Embedder(None, "")
    client = openai.AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.embedding_base_url or settings.openai_base_url, max_retries=0,
        timeout=settings.llm_timeout_seconds)
    return Embedder(client, settings.embedding_model, settings.embedding_dimensions,
                    timeout=settings.llm_timeout_seconds)


def push_settings(settings: Settings) -> PushSettings | None:
    """WebSub needs a URL hubs can reach: only in webhook mode, and only if not turned off.
    Its callbacks live beside the webhook, on WEBHOOK_URL's host, unless told otherwise."""
    if not settings.webhook_url or not settings.websub:
        return None
    parts = urlsplit(settings.webhook_url)
    return PushSettings(settings.websub_callback_url or f"{parts.scheme}://{parts.netloc}/websub",
                        settings.websub_lease_seconds, settings.websub_poll_interval_seconds,
                        settings.websub_retry_seconds)


def searching(settings: Settings) -> Searching:
    """The providers SEARCH_PROVIDERS names, each at its own endpoint setting."""
    endpoints = {"gdelt": settings.gdelt_api_url, "googlenews": settings.google_news_url}
    return Searching(search_providers.build(settings.search_providers, endpoints),
                     settings.search_interval_seconds)


async def register_commands(application: Application, svc: Services) -> None:
    """The command menu in every catalogue language; admins also see the admin commands.

    Menus are optional: started in the background, each retried until Telegram takes it.
    """
    def menu(language: str, names: tuple[str, ...]) -> list[BotCommand]:
        return [BotCommand(name, svc.catalog.text(language, f"command.{name}")) for name in names]

    menus: list[tuple[str, list[BotCommand], dict[str, Any]]] = [
        ("default", menu("en", READER_COMMANDS), {})
    ]
    for language in svc.catalog.languages:
        menus.append((language, menu(language, READER_COMMANDS), {"language_code": language}))
        for admin in svc.admin_ids:
            menus.append((f"{language}, admin {admin}",
                          menu(language, READER_COMMANDS + ADMIN_COMMANDS),
                          {"scope": BotCommandScopeChat(admin), "language_code": language}))
    done = await asyncio.gather(*(
        keep_trying(partial(application.bot.set_my_commands, commands, **where),
                    f"command menu ({label})", svc.stopping)
        for label, commands, where in menus))  # side by side: none waits behind a slow one
    log.info("command menus set: %d of %d", sum(done), len(menus))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure and tell the user something went wrong, never a stack trace."""
    if polling_outage(update, context.error, context.job):
        return  # WatchedRequest logs the outage once, not once per try
    log.error("update failed", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message and update.effective_chat:
        try:
            await reply(update, context, await chat_language(update, context), "error.internal")
        except Exception:
            log.exception("could not report the error to the chat")


def exit_on_sigterm(signum: int, _frame: object) -> None:
    """Until the application installs its own handler: as PID 1 in a container, Python would
    otherwise ignore SIGTERM, and `docker stop` during a slow start-up would wait to kill."""
    raise SystemExit(128 + signum)


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The webhook, when WEBHOOK_URL asks for one; long polling otherwise."""
    if not settings.webhook_url:
        return None
    return WebhookConfig(settings.webhook_url, settings.webhook_secret.get_secret_value(),
                         settings.webhook_listen, settings.webhook_port, settings.webhook_path)


def settings_problem(error: ValidationError) -> str:
    """An invalid setting as one line an operator can act on: each variable by the name it is
    set by, and what is wrong with it, never its value (a token or a URL with a password)."""
    problems = [f"{'_'.join(str(part) for part in e['loc']).upper()}: "
                f"{e['msg'].removeprefix('Value error, ')}" for e in error.errors()]
    return "invalid settings (see the README's configuration table): " + "; ".join(problems)


def main() -> None:
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        settings = Settings()
    except ValidationError as error:
        print(settings_problem(error), file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings)
    token = settings.telegram_bot_token.get_secret_value()
    if not token:
        log.error("TELEGRAM_BOT_TOKEN is not set; get one from @BotFather (see README)")
        raise SystemExit(2)
    webhook = webhook_config(settings)
    if webhook is not None and (problem := webhook.problem()):
        log.error("%s", problem)
        raise SystemExit(2)
    try:
        lock = claim_sqlite(settings.database_url)  # noqa: F841 (held until the process ends)
    except DatabaseInUse as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    try:
        svc = build_services(settings)
    except DatabaseUnreachable as exc:
        log.error("%s; check DATABASE_URL and that the server is up", exc)
        raise SystemExit(1) from None
    background: set[asyncio.Task[None]] = set()

    async def post_init(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, partial(stop, application))
        background.add(asyncio.create_task(register_commands(application, svc), name="menus"))
        # What start-up made (the libraries' modules and classes, the application) lives as
        # long as the process: frozen, the collector's full passes no longer walk it. They
        # took 140-170 ms each, ten times in a 30,000-chat paid fan-out, and held every send.
        gc.collect()
        gc.freeze()

    def stop(_: Application[Any, Any, Any, Any, Any, Any]) -> None:
        svc.stopping.set()  # receiver.run stops the application when it is set

    async def post_shutdown(_: Application[Any, Any, Any, Any, Any, Any]) -> None:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await svc.http.aclose()
        svc.reader.close()
        svc.charts.shutdown(cancel_futures=True)
        svc.sending.release()  # the next replica takes the role at once, not when we exit
        svc.newsroom.close()
        svc.engine.dispose()

    api = settings.telegram_api_url.rstrip("/")
    rate_limit = RateLimit(settings.commands_per_minute, exempt=svc.admin_ids)
    bot_id = int(token.partition(":")[0]) if token.partition(":")[0].isdigit() else 0
    callbacks = hub_callback.routes(svc, svc.push) if svc.push is not None else []
    updates = receiver.choose(svc.engine, webhook, bot_id, svc.newsroom.keys, callbacks)
    application = (
        ApplicationBuilder()
        .application_class(PatientApplication)
        .token(token)
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .request(AiohttpRequest())
        .get_updates_request(WatchedRequest(Outage()))
        .rate_limiter(Outbound(receiver.answers_alone(updates, svc.engine)))
        .defaults(DEFAULTS)
        .concurrent_updates(ChatLanes(rate_limit))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    application.bot_data[KEY] = svc
    application.add_handlers(all_handlers(rate_limit))
    application.add_error_handler(on_error)
    assert application.job_queue is not None, "install python-telegram-bot[job-queue]"
    jobs.schedule(application.job_queue)
    with session_scope(svc.engine) as session:
        source_count = sources.count(session=session)
        if svc.engine.dialect.name == "sqlite":
            released = deliveries.release_stale_leases(session=session)
            if released:
                log.info("resending %d deliveries claimed before the last stop", released)
        if svc.push is None and (dropped := websub.forget_all(session=session)):
            log.info("WebSub off (no webhook): %d sources are polled at their own interval "
                     "again", dropped)
    log.info("Tidings starting: database %s, LLM %s, %d sources",
             describe(settings.database_url),
             settings.llm_model if svc.writer.online else "offline", source_count)
    try:
        # Retried with backoff until Telegram answers: at boot the network may not be up yet.
        receiver.run(application, updates, svc.stopping)
    except TokenRejected:
        log.error("Telegram rejected TELEGRAM_BOT_TOKEN (revoked or mistyped): "
                  "get the bot's current token from @BotFather (see README)")
        raise SystemExit(2) from None
    except NotTelegram as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None
    except WebhookRefused as exc:
        log.error("%s; check WEBHOOK_URL (Telegram posts to https on port 443, 80, 88 or 8443)",
                  exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
